"""The shared seam every pattern writes through: one SQLAlchemy warehouse."""

from collab_pipelines.warehouse.resources import (
    Warehouse,
    WarehouseError,
    engine_for_url,
)

__all__ = ["Warehouse", "WarehouseError", "engine_for_url"]
