"""Pattern 1, fresh data: catalog-declared exports into the warehouse, partitioned by day."""
