import dagster as dg

# Filled in by the evaluation pattern's work; an empty Definitions merges cleanly meanwhile.
defs = dg.Definitions()
