"""The shared seam every pattern writes through: one SQLAlchemy warehouse.

`engine` holds the Dagster-free functions (engines, read, replace); `resources` wraps them
as the `Warehouse` resource. Nothing here imports a pattern, and this package file imports
nothing, so a client or a report kernel that needs an engine does not load Dagster.
"""
