"""Features: one library for training rows (offline) and scoring rows (online): the registry, item table, assembly.

See ``docs/personalization.md`` for the contracts: :class:`~fuserec_os.features.spec.FeatureSet` over the
``FEATURES`` registry (``spec``), :class:`~fuserec_os.features.items.ItemTable` precomputed per catalog
(``items``) and :func:`~fuserec_os.features.assemble.assemble` (``assemble``). Import from those modules: this
package file stays empty so that reading the feature registry (the config does) never loads pandas.
"""
