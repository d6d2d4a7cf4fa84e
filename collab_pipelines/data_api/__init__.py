"""Pattern 4: the HTTP data API and its Python client (a separate process, not in Definitions)."""

from collab_pipelines.data_api.client import Client, DataApiError

__all__ = ["Client", "DataApiError"]
