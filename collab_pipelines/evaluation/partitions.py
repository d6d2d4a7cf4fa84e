import dagster as dg

# One partition per evaluated commit, or per combination of commits in a multi-repository
# suite. Added by the commit sensor; report templates partitioned "by commit" use it too.
evaluation_commits = dg.DynamicPartitionsDefinition(name="evaluation_commits")
