"""Search: the request contract, a safe Boolean query parser and a pure OpenSearch DSL builder."""
