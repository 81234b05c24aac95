"""Online experiments: A/B tests and team-draft interleaving, from assignment to the report.

Modules, each small and importable on its own (the proxy imports only the pure-Python ones):

- :mod:`.config`: the ``experiments`` section of the ranking YAML (pure Python).
- :mod:`.assign`: which variant a user (or session) sees; the proxy's entry points ``active_experiment`` and
  ``assign``, and the fields an impression under an experiment carries (pure Python).
- :mod:`.interleave`: team-draft interleaving of two ranked lists and click credit (pure Python).
- :mod:`.state`: stopped experiments, kept in the cluster so every proxy replica sees ``fuserec ab stop``.
- :mod:`.attribution`: which logged search each click, add to cart and purchase belongs to (pandas).
- :mod:`.stats`: rates, lifts, confidence intervals and p-values (NumPy).
- :mod:`.report`: the report of one experiment, its verdict in words, guardrails, reading from the cluster.
- :mod:`.chart`: the lifts with their intervals as an SVG.

See docs/experiments.md for running an experiment on a real shop.
"""
