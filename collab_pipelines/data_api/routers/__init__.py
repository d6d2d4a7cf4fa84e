"""The data API's routes, one module per resource."""
