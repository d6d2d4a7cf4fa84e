from collab_pipelines.intake.definitions import defs

__all__ = ["defs"]
