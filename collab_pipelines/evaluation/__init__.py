from collab_pipelines.evaluation.definitions import defs

__all__ = ["defs"]
