"""Rerank: NumPy scorers (never TensorFlow), the engine/model blend, ranking metrics, the artifact and its registry.

Serving loads from here, so nothing in this package imports :mod:`fuserec_os.learn` (training writes the
artifacts this package defines and reads). Import from the modules; this file stays empty.
"""
