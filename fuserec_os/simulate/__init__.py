"""Seeded simulators that stand in for a real shop, so the demo, tests and benchmarks need no private data.

:mod:`fuserec_os.simulate.catalog` generates the product catalog; every product carries hidden latent
attributes (style, quality tier, price band, appeal) that the shopper simulator can base preferences on
without those attributes ever leaking into the searchable documents.
"""
