"""Catalog ingestion: read input tables and turn each row into a clean product document.

Kept separate from the engine code so the rules about what a valid product is can be tested
(and reasoned about) without a running cluster.
"""
