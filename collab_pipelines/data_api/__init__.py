"""Pattern 4: the HTTP data API and its Python client (a separate process, not in Definitions)."""
