"""The partitions a template may declare, reusing the upstream patterns' own objects.

Assets in one job or one backfill must share their PartitionsDefinition, so a daily report
takes the very object of the export it reads, and a per-commit report continuous
evaluation's `evaluation_commits`.
"""

import dagster as dg

from collab_pipelines.evaluation.partitions import evaluation_commits


def partitions_for(partitioning: str, deps: list[str], upstream: dict[str, dg.AssetsDefinition]):
    """The PartitionsDefinition for a template's `partitions` field, or a reason it has none."""
    if partitioning == "none":
        return None
    if partitioning == "evaluation_commits":
        return evaluation_commits
    for dep in deps:
        asset = upstream.get(dep)
        if asset is not None and isinstance(asset.partitions_def, dg.TimeWindowPartitionsDefinition):
            return asset.partitions_def
    raise ValueError(f"'partitions' is 'daily' but none of its upstream assets {deps} is a daily export")
