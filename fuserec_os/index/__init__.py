"""Index: the catalog's managed indices (versioned mappings, aliases, migrations), catalog ingest, state docs.

The rules about what a valid product is (``validate``) are kept apart from the engine code so they can be
tested, and reasoned about, without a running cluster.
"""
