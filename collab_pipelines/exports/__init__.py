"""Pattern 1, fresh data: catalog-declared exports into the warehouse, partitioned by day."""

from collab_pipelines.exports.definitions import build_defs, defs

__all__ = ["build_defs", "defs"]
