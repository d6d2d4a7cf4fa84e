"""`/v1/reports/{asset_key}`: the rendered HTML of a report asset's latest materialization."""

import hashlib
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path as FilePath
from typing import Annotated

import dagster as dg
from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse, Response

from collab_pipelines.data_api.deps import (
    PREFIX,
    PROTECTED,
    Config,
    Grant,
    IfNoneMatch,
    etag_matches,
    examples,
)
from collab_pipelines.data_api.problems import ApiProblem, bad_request, not_found, problem_responses
from collab_pipelines.data_api.rows import PARTITION_KEY
from collab_pipelines.data_api.scope import Scope

router = APIRouter(prefix=f"{PREFIX}/reports", tags=["reports"], dependencies=PROTECTED)
_ASSET_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}(/[A-Za-z0-9_]{1,64}){0,7}$")


@router.get(
    "/{asset_key:path}",
    summary="The rendered HTML of a report asset's latest materialization",
    response_class=Response,
    responses={
        200: {
            "description": "The report, as HTML without code.",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        304: {"description": "Not modified since the ETag the client sent."},
        **problem_responses(400, 401, 403, 404),
    },
)
def get_report(
    config: Config,
    grant: Grant,
    asset_key: Annotated[
        str,
        Path(
            description="The report asset's key; a multi-part key is written with slashes.",
            pattern=_ASSET_KEY.pattern,
            openapi_examples=examples(daily="daily_delay_report", nested="reports/daily_delay_report"),
        ),
    ],
    partition: Annotated[
        str | None,
        Query(
            description="The partition of a partitioned report; omit for the latest materialization.",
            openapi_examples=examples(day="2013-01-05"),
            json_schema_extra={"pattern": PARTITION_KEY.pattern},
        ),
    ] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    if not _ASSET_KEY.match(asset_key):
        raise bad_request(
            f"asset_key: {asset_key[:80]!r} is not an asset key (words joined by /)", "asset_key"
        )
    if partition is not None and not PARTITION_KEY.match(partition):
        raise bad_request("partition: a partition key is 1 to 256 printable characters", "partition")
    what = f"report {asset_key}" + (f" partition {partition}" if partition is not None else "")
    record = (
        latest_in_scope(config.catalog.instance, asset_key, partition, grant.scope)
        if grant.scope.allows_report(asset_key, partition)
        else None
    )
    # A report outside the token's scope gets the answer a report never made gets.
    if record is None:
        raise not_found(f"{what} has never been materialized")
    entry = record.event_log_entry
    html_path = entry.asset_materialization.metadata.get("html_path")
    path_text = getattr(html_path, "path", None) or getattr(html_path, "text", None)
    if not isinstance(path_text, str):
        raise not_found(f"{what}: its latest materialization (run {entry.run_id}) records no html_path")
    path = FilePath(path_text).resolve()
    if not path.is_relative_to(config.shared_dir.resolve()):
        raise ApiProblem(403, "Forbidden", f"{what}: its HTML file lies outside the project's shared folder")
    if not path.is_file():
        raise not_found(f"{what}: the HTML file of run {entry.run_id} no longer exists")
    etag = '"' + hashlib.sha256(f"{record.storage_id}|{path}".encode()).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(datetime.fromtimestamp(entry.timestamp, UTC), usegmt=True),
        "Cache-Control": "private, no-cache",
        # Rendered notebooks are shown, never run: no script in them may act for the viewer.
        "Content-Security-Policy": "sandbox",
        "X-Content-Type-Options": "nosniff",
    }
    if if_none_match and etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    served = entry.asset_materialization.partition
    config.audit.record(grant.name, "report", report=asset_key, partition=served, run=entry.run_id)
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=headers)


def latest_in_scope(instance: dg.DagsterInstance, asset_key: str, partition: str | None, scope: Scope):
    """The newest materialization the scope may see: of `partition` if given, else of any partition.

    A token limited to some suites skips a newer report of another suite's evaluation.
    """
    records_filter = dg.AssetRecordsFilter(
        asset_key=dg.AssetKey(asset_key.split("/")),
        asset_partitions=[partition] if partition is not None else None,
    )
    cursor = None
    while True:
        result = instance.fetch_materializations(
            records_filter, limit=1 if scope.every_suite else 100, cursor=cursor
        )
        for record in result.records:
            if scope.allows_report(asset_key, record.event_log_entry.asset_materialization.partition):
                return record
        if not result.has_more:
            return None
        cursor = result.cursor
