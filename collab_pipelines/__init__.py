"""collab_pipelines: Dagster patterns that let data scientists and engineers work together.

Importing the package runs nothing. Dagster loads the project's definitions from
`collab_pipelines.definitions:defs`, a lazy entry point; a client or a report kernel that
imports one helper loads neither Dagster nor the patterns.
"""
