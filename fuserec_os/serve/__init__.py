"""The OpenSearch query proxy (``fuserec serve``): an ASGI app in front of the engine that personalizes
``_search``/``_msearch`` on the products alias for a shopper id in a header, passes reads through, refuses
writes, records events and impressions, and hot-reloads the registry's active model.

Modules: :mod:`.app` (routes, the app's state), :mod:`.engine` (the async pooled engine client),
:mod:`.personalize` (request analysis and the personalized search flow around :class:`RerankStage`),
:mod:`.policy` (what passes, what is refused), :mod:`.models` (model holder and hot reload),
:mod:`.impressions` (the batched search log), :mod:`.metrics` (Prometheus text), :mod:`.errors`
(OpenSearch-shaped error bodies). No TensorFlow here: the model is served by the NumPy scorer.
"""
