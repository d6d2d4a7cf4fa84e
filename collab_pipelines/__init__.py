from collab_pipelines.definitions import defs

__all__ = ["defs"]
