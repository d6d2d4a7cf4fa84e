from collab_pipelines.reports.definitions import defs

__all__ = ["defs"]
