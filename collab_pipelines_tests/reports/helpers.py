import json
from pathlib import Path

import dagster as dg
import nbformat

# What dagstermill and Dagster put into an executed notebook that must never be published.
LEAKS = (
    "InstanceRef",
    "instance_ref",
    "__dm_",
    "_reconstitute_job_context",
    "CodePointer",
    "run_storage",
    "event_log_storage",
    "SqliteRunStorage",
    " - DEBUG - ",
    "BetaWarning",
    "probe debug line",
    "probe beta notice",
)


def execute(
    job_fn,
    instance: dg.DagsterInstance,
    *,
    partition=None,
    first=None,
    last=None,
    run_config=None,
    tags: dict[str, str] | None = None,
):
    """One in-process run of the job; `tags` are added to the run's (and override the job's)."""
    partition_tags = {"dagster/partition": partition} if partition else {}
    if first:
        partition_tags = {
            "dagster/asset_partition_range_start": first,
            "dagster/asset_partition_range_end": last,
        }
    tags = {**partition_tags, **(tags or {})}
    # In process: a step subprocess would load the definitions once more for nothing.
    run_config = {**(run_config or {}), "execution": {"config": {"in_process": {}}}}
    return dg.execute_job(
        dg.reconstructable(job_fn), instance=instance, tags=tags, run_config=run_config, raise_on_error=False
    )


def materializations(instance: dg.DagsterInstance, asset: str) -> dict:
    """Latest metadata per partition (None for an unpartitioned asset)."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
    found = {}
    for record in reversed(records):
        found[record.partition_key] = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    return found


def step_failure(result):
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures, "the run did not fail a step"
    return failures[0].event_specific_data


def stream_text(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(
        o.get("text", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream"
    )


def probe_output(path: Path) -> dict:
    for line in stream_text(path).splitlines():
        if line.startswith("PROBE "):
            return json.loads(line[len("PROBE ") :])
    raise AssertionError(f"{path} printed no PROBE line:\n{stream_text(path)}")


def published_text(path: Path) -> str:
    """What a reader sees: all of an HTML file; a notebook's outputs, metadata and injected cell
    (the template's own code may well mention logs and warnings)."""
    if path.suffix == ".html":
        return path.read_text(encoding="utf-8")
    nb = nbformat.read(path, as_version=4)
    parts = [json.dumps(nb.metadata)]
    for cell in nb.cells:
        parts.append(json.dumps(cell.get("outputs", [])))
        if "injected-parameters" in (cell.metadata.get("tags") or []):
            parts.append(cell.source)
    return "\n".join(parts)


def assert_published_clean(*paths: Path) -> None:
    for path in paths:
        text = published_text(Path(path))
        leaked = [marker for marker in LEAKS if marker in text]
        assert not leaked, f"{path} publishes {leaked}"
