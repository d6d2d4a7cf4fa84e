import dagster as dg

# Filled in by the reports pattern's work; an empty Definitions merges cleanly meanwhile.
defs = dg.Definitions()
