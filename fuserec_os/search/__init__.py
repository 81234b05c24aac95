"""Search: the request contract, a safe Boolean query parser, the DSL builder and retrieval from the engine."""
