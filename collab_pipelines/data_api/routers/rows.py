"""`/v1/datasets/{name}/rows`: a dataset's rows, streamed in four formats, with validators."""

import math
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from collab_pipelines.data_api import query as q
from collab_pipelines.data_api import rows
from collab_pipelines.data_api.deps import (
    PREFIX,
    PROTECTED,
    ApiConfig,
    DatasetFromPath,
    Grant,
    IfNoneMatch,
    etag_matches,
    examples,
)
from collab_pipelines.data_api.formats import FORMATS, encode
from collab_pipelines.data_api.models import RowsPage
from collab_pipelines.data_api.problems import not_found, problem_responses

router = APIRouter(prefix=f"{PREFIX}/datasets", tags=["rows"], dependencies=PROTECTED)

_CONTENT = {
    "application/x-ndjson": {"schema": {"type": "string"}},
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
}
# Shapes the documentation states so a client (or a fuzzer) knows what is well formed; the
# server checks each itself, to say in its own words what is wrong.
_NAME = "[A-Za-z0-9_]{1,64}"
_DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


@router.get(
    "/{name}/rows",
    response_model=RowsPage,
    summary="A dataset's rows: by partition, filtered, sorted, paginated, in four formats",
    responses={
        200: {
            "description": "A page of rows. Headers: ETag, Last-Modified, X-Next-Cursor, Link.",
            "content": _CONTENT,
        },
        304: {"description": "Not modified since the ETag or date the client sent."},
        **problem_responses(400, 401, 404, 414, 431),
    },
)
async def get_rows(
    request: Request,
    dataset: DatasetFromPath,
    grant: Grant,
    partition: Annotated[
        str | None,
        Query(
            description="One partition key (a day `YYYY-MM-DD`, or a dynamic key), or `latest` for the newest "
            "complete (materialized) partition. Not together with partition_from or partition_to.",
            openapi_examples=examples(one_day="2013-01-05", latest="latest"),
            json_schema_extra={"pattern": rows.PARTITION_KEY.pattern},
        ),
    ] = None,
    partition_from: Annotated[
        str | None,
        Query(
            description="First day of a partition range (inclusive); daily datasets only.",
            openapi_examples=examples(first_day="2013-01-01"),
            json_schema_extra={"pattern": _DAY_PATTERN, "format": "date"},
        ),
    ] = None,
    partition_to: Annotated[
        str | None,
        Query(
            description="Last day of a partition range (inclusive, not before partition_from); daily datasets only.",
            openapi_examples=examples(last_day="2013-01-07"),
            json_schema_extra={"pattern": _DAY_PATTERN, "format": "date"},
        ),
    ] = None,
    columns: Annotated[
        str | None,
        Query(
            description="Comma-separated columns to return, in this order (default: all).",
            openapi_examples=examples(some="id,carrier,dep_delay"),
            json_schema_extra={"pattern": f"^{_NAME}(,{_NAME})*$"},
        ),
    ] = None,
    filter: Annotated[
        list[str],
        Query(
            description="Repeatable `column:op:value`; op is eq, ne, lt, lte, gt, gte or in. An in-list is "
            "comma-separated or a JSON array. Values are parsed as the column's type; a date-time value "
            "has no UTC offset unless its column holds a time zone.",
            openapi_examples=examples(
                range=["dep_delay:gte:30"], in_list=["carrier:in:AA,UA"], equality=["origin:eq:JFK"]
            ),
            json_schema_extra={
                "items": {"type": "string", "pattern": f"^{_NAME}:({'|'.join(q.OPERATORS)}):"}
            },
        ),
    ] = [],  # noqa: B006 (FastAPI copies it)
    sort: Annotated[
        str | None,
        Query(
            description="Comma-separated columns, `-` for descending; the primary key breaks ties.",
            openapi_examples=examples(by_delay="-dep_delay"),
            json_schema_extra={"pattern": f"^[-+]?{_NAME}(,[-+]?{_NAME})*$"},
        ),
    ] = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=q.MAX_LIMIT,
            description="Rows in this page, at most 1,000,000.",
            openapi_examples=examples(page=1000),
        ),
    ] = 10_000,
    cursor: Annotated[
        str | None,
        Query(
            description="`next_cursor` of the previous page (also in the X-Next-Cursor header), with the same "
            "sort.",
            openapi_examples=examples(next_page="eyJzIjpbImlkIl0sInYiOlsxMDBdfQ"),
            json_schema_extra={"pattern": "^[A-Za-z0-9_-]+$"},
        ),
    ] = None,
    format: Annotated[
        Literal["json", "ndjson", "csv", "parquet"] | None,
        Query(
            description="Response format; without it, the Accept header decides, else JSON.",
            openapi_examples=examples(parquet="parquet", csv="csv"),
        ),
    ] = None,
    if_none_match: IfNoneMatch = None,
    if_modified_since: Annotated[
        str | None,
        Header(
            description="An HTTP date: 304 if the rows asked for were not written since.",
            openapi_examples=examples(date="Tue, 08 Jan 2013 00:00:00 GMT"),
        ),
    ] = None,
) -> Response:
    fmt = format or negotiate(request.headers.get("accept", ""))
    parameters = rows.RowsParameters(
        partition, partition_from, partition_to, columns, filter, sort, limit, cursor
    )
    # Everything that blocks (the catalog, the instance, the warehouse, encoding a page that fits
    # one chunk) runs in one worker thread: each hop between the event loop and a worker costs
    # more than planning a request.
    config: ApiConfig = request.app.state.config  # not a dependency: see deps.py
    return await run_in_threadpool(
        respond, request, dataset, config, parameters, fmt, if_none_match, if_modified_since, grant.name
    )


def respond(
    request: Request,
    dataset,
    config: ApiConfig,
    parameters: rows.RowsParameters,
    fmt: str,
    if_none_match: str | None,
    if_modified_since: str | None,
    token_name: str,
) -> Response:
    catalog = config.catalog
    shape = catalog.table_shape(dataset)
    if shape is None:
        if dataset.pattern != "intake":
            raise not_found(
                f"dataset {dataset.name!r} has not been materialized yet: its table does not exist"
            )
        # An intake table is written by the first upload: until then it is, truly, empty.
        return _no_upload_yet(dataset, config, parameters, fmt, if_none_match, token_name)
    start, end = catalog.partition_bounds(dataset) if dataset.partitioning == "daily" else (None, None)
    parsed = rows.parse(
        dataset,
        shape.columns,
        parameters,
        rows.Partitions(start, end, lambda: catalog.latest_partition(dataset)),
        shape.aware,
    )
    sqlite = catalog.engine.dialect.name == "sqlite"
    table = catalog.table(dataset, shape.columns, shape.aware)
    # SQLite writes each row's JSON itself, at about the cost of fetching its values.
    plan = rows.plan(parsed, table, config.chunk_rows, sqlite, json_records=fmt in ("json", "ndjson"))

    connection = catalog.engine.connect()
    if connection.dialect.name == "postgresql":
        # The fingerprint, the page and the probe see one snapshot: the ETag names these rows.
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
    try:
        headers = validators(catalog, parsed, rows.fingerprint(connection, plan), fmt)
        if not_modified(headers, if_none_match, if_modified_since):
            connection.close()
            return Response(status_code=304, headers=headers)
        page = rows.stream(connection, plan, config.chunk_rows, connection.close)
    except BaseException:
        connection.close()
        raise
    types = [dataset.columns[c] for c in parsed.selected]
    header = page_header(dataset, parsed.selected, types, page.next_cursor)
    headers["Cache-Control"] = "private, no-cache"
    if page.next_cursor:
        headers["X-Next-Cursor"] = page.next_cursor
        headers["Link"] = f'<{request.url.include_query_params(cursor=page.next_cursor)}>; rel="next"'
    chunks = audited(
        page.chunks,
        lambda sent: config.audit.record(
            token_name, "rows", dataset=dataset.name, partition=partition_text(parsed.partitions), rows=sent
        ),
    )
    body = encode(fmt, chunks, parsed.selected, types, header, written=plan.records, whole=page.whole)
    if page.whole:
        # A page of one chunk is encoded in this thread, which also returns its connection
        # to the pool; it leaves with a Content-Length. Longer pages stream chunk by chunk.
        return Response(b"".join(body), media_type=FORMATS[fmt], headers=headers)
    return StreamingResponse(body, media_type=FORMATS[fmt], headers=headers)


def _no_upload_yet(
    dataset, config: ApiConfig, parameters, fmt: str, if_none_match, token_name: str
) -> Response:
    """No rows, with the columns the dataset declares, and what the request asked of them."""
    parsed = rows.parse(dataset, tuple(dataset.columns), parameters)
    types = [dataset.columns[c] for c in parsed.selected]
    # The table's first write changes it (the real fingerprint never hashes to this).
    headers = {"ETag": rows.Fingerprint(("no table",), False).etag(parsed.shape(), parsed.partitions, fmt)}
    if not_modified(headers, if_none_match, None):
        return Response(status_code=304, headers=headers)
    headers["Cache-Control"] = "private, no-cache"
    header = page_header(dataset, parsed.selected, types, None)
    config.audit.record(
        token_name, "rows", dataset=dataset.name, partition=partition_text(parsed.partitions), rows=0
    )
    body = b"".join(encode(fmt, iter([[]]), parsed.selected, types, header, whole=True))
    return Response(body, media_type=FORMATS[fmt], headers=headers)


def page_header(dataset, selected: list[str], types: list[str], next_cursor: str | None) -> dict:
    return {
        "dataset": dataset.name,
        "columns": [{"name": c, "type": t} for c, t in zip(selected, types, strict=True)],
        "next_cursor": next_cursor,
    }


def audited(chunks, record):
    """The chunks, with the rows that left counted and recorded once the page ends or breaks off."""
    sent = 0
    try:
        for chunk in chunks:
            yield chunk
            sent += len(chunk)
    finally:
        chunks.close()  # returns the connection now, not when the collector gets to it
        record(sent)


def partition_text(partitions) -> str | None:
    if isinstance(partitions, tuple):
        return f"{partitions[0]}..{partitions[1]}"
    return ",".join(partitions) if partitions else None


def validators(catalog, parsed: rows.RowsRequest, fingerprint: rows.Fingerprint, fmt: str) -> dict[str, str]:
    """ETag and Last-Modified from the rows themselves, so no write goes unseen.

    A write that records no materialization (a failed evaluation's rows, a manual fix) still
    changes the fingerprint. A dataset without a write stamp adds its latest materialization
    to the ETag and sends no Last-Modified, which it could not keep true.
    """
    dataset = parsed.dataset
    if fingerprint.rows == 0 and isinstance(parsed.partitions, list):
        _refuse_unmaterialized(catalog, dataset, parsed.partitions[0])
    parts: list[object] = [parsed.shape(), parsed.partitions, parsed.limit, fmt]
    if not fingerprint.stamped:
        latest = catalog.latest_materialization(dataset)
        parts.append(latest.storage_id if latest else None)
    headers = {"ETag": fingerprint.etag(*parts)}
    if fingerprint.modified is not None:
        headers["Last-Modified"] = format_datetime(fingerprint.modified, usegmt=True)
    return headers


def _refuse_unmaterialized(catalog, dataset, partition: str) -> None:
    materialized = catalog.materialized_partitions(dataset)
    if materialized and partition not in materialized:
        daily = dataset.partitioning == "daily"
        span = f"{min(materialized)} .. {max(materialized)}" if daily else f"{len(materialized)} partitions"
        raise not_found(
            f"partition {partition!r} of {dataset.name!r} has not been materialized (materialized: {span})",
            "partition",
        )


def negotiate(accept: str) -> str:
    for media in (part.split(";")[0].strip().lower() for part in accept.split(",")):
        for fmt, media_type in FORMATS.items():
            if media == media_type.split(";")[0]:
                return fmt
    return "json"


def not_modified(headers: dict, if_none_match: str | None, if_modified_since: str | None) -> bool:
    if if_none_match is not None:
        # RFC 9110: when If-None-Match is present, If-Modified-Since is ignored.
        return etag_matches(if_none_match, headers["ETag"])
    if if_modified_since and "Last-Modified" in headers:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError, IndexError):
            return False
        if since is None or since.tzinfo is None:
            return False
        modified = parsedate_to_datetime(headers["Last-Modified"])
        return math.floor(modified.timestamp()) <= since.timestamp()
    return False
