"""The FastAPI application: versioned, documented, token-protected read access to the warehouse."""

import hashlib
import importlib.resources
import itertools
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path as FilePath
from typing import Annotated, Literal

import dagster as dg
import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from collab_pipelines.data_api import query as q
from collab_pipelines.data_api.auth import ReloadingTokens
from collab_pipelines.data_api.catalog import Catalog, Materialization
from collab_pipelines.data_api.formats import FORMATS, arrow_schema, encode
from collab_pipelines.data_api.models import (
    Column,
    DatasetDetail,
    DatasetList,
    DatasetSummary,
    Evaluation,
    EvaluationsByCommit,
    Health,
    LastMaterialization,
    Lineage,
    Partitioning,
    RowsPage,
)
from collab_pipelines.data_api.problems import (
    PROBLEM_MEDIA_TYPE,
    ApiProblem,
    Problem,
    bad_request,
    not_found,
    problem_responses,
)
from collab_pipelines.warehouse.datasets import Dataset

log = logging.getLogger(__name__)
API_VERSION = "v1"
LATEST = "latest"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PARTITION_KEY = re.compile(r"^[^\x00-\x1f]{1,256}$")
_ASSET_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}(/[A-Za-z0-9_]{1,64}){0,7}$")
_COMMIT = re.compile(r"^[0-9a-fA-F]{4,40}$")
_DATASET_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_SHORT_SHA = 8
_SHA_IN_TEXT = re.compile(r"(?<![0-9a-z])[0-9a-f]{7,40}(?![0-9a-z])")
_SHA_AFTER_AT = re.compile(r"@([0-9a-f]{4,40})")

DESCRIPTION = """
Read the project's warehouse, the same tables its Dagster assets write, without asking anyone
for an export.

* **Authentication**: every endpoint but `/health` needs `Authorization: Bearer <token>`.
  An administrator issues a token with `collab-data-api token <your-name>`.
* **Datasets** lists what there is: columns and types, partitioning, last materialization,
  row count, latest check results, owners. One dataset adds its lineage.
* **Rows** reads a dataset by partition, partition range or `partition=latest`, with column
  selection, typed filters (`filter=column:op:value`, op one of eq, ne, lt, lte, gt, gte, in),
  sort and keyset pagination (`next_cursor`), as JSON, NDJSON, CSV or Parquet. Responses are
  streamed.
* **Caching**: row responses carry an `ETag` and `Last-Modified` from the dataset's latest
  materialization; send them back in `If-None-Match` / `If-Modified-Since` to get `304`.
* **Errors** are `application/problem+json` documents whose `detail` says what was wrong.
"""


@dataclass
class ApiConfig:
    catalog: Catalog
    tokens: ReloadingTokens
    state_dir: FilePath
    chunk_rows: int = 5_000


def _examples(**values) -> dict:
    return {name: {"summary": name.replace("_", " "), "value": value} for name, value in values.items()}


DOCS_ASSETS_PATH = "/docs-assets"


def docs_assets() -> FilePath:
    """Swagger UI's files, as the fastapi-offline package ships them."""
    return FilePath(str(importlib.resources.files("fastapi_offline") / "static"))


def create_app(config: ApiConfig) -> FastAPI:
    app = FastAPI(
        title="collab_pipelines data API",
        version="1.0.0",
        description=DESCRIPTION,
        # /docs is served below from packaged assets: FastAPI's default loads Swagger UI from a
        # CDN, which a closed network (or a strict proxy) turns into a blank page.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=str(docs_assets())), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
        )

    catalog = config.catalog
    bearer = HTTPBearer(auto_error=False, description="A token issued by `collab-data-api token <name>`.")

    def authenticated(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        name = config.tokens.name_for(credentials.credentials) if credentials else None
        if name is None:
            detail = "this token is not valid" if credentials else "send Authorization: Bearer <token>"
            raise ApiProblem(401, "Unauthorized", detail)
        return name

    protected = [Depends(authenticated)]

    # -- errors ------------------------------------------------------------------------
    @app.exception_handler(ApiProblem)
    def _problem(_request: Request, error: ApiProblem) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.problem.status == 401 else None
        return JSONResponse(
            error.problem.model_dump(exclude_none=True),
            status_code=error.problem.status,
            media_type=PROBLEM_MEDIA_TYPE,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        location = ".".join(
            str(part) for part in first.get("loc", ()) if part not in ("query", "path", "header")
        )
        return _problem(_request, bad_request(f"{location}: {first.get('msg', 'invalid')}", location or None))

    @app.exception_handler(StarletteHTTPException)
    def _http(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed"}
        detail = "no such endpoint; see /docs" if error.status_code == 404 else str(error.detail)
        response = _problem(
            _request, ApiProblem(error.status_code, titles.get(error.status_code, "Error"), detail)
        )
        response.headers.update(error.headers or {})  # a 405 names the allowed methods in Allow
        return response

    @app.exception_handler(sa.exc.OperationalError)
    def _warehouse_down(_request: Request, error: sa.exc.OperationalError) -> JSONResponse:
        # The message may name hosts or users; it goes to the log, never to the client.
        log.error("warehouse query failed: %s", error)
        return _problem(
            _request, ApiProblem(503, "Warehouse unavailable", "the warehouse did not answer; retry later")
        )

    @app.exception_handler(Exception)
    def _unexpected(_request: Request, error: Exception) -> JSONResponse:
        # A bug, never a detail for the client: the traceback goes to the log only.
        log.error("unexpected error", exc_info=error)
        return _problem(_request, ApiProblem(500, "Internal error", "the server failed; the error is logged"))

    # -- endpoints -----------------------------------------------------------------------
    @app.get("/health", response_model=Health, tags=["service"], summary="Liveness, without a token")
    def health() -> Health:
        return Health(status="ok")

    @app.get(
        f"/{API_VERSION}/datasets",
        response_model=DatasetList,
        dependencies=protected,
        tags=["datasets"],
        summary="Every dataset: description, columns, partitioning, freshness, checks, owners",
        responses=problem_responses(401),
    )
    def list_datasets() -> DatasetList:
        return DatasetList(
            datasets=[_summary(d) for d in sorted(catalog.datasets.values(), key=lambda d: d.name)]
        )

    def dataset_path():
        return Path(
            description="A dataset's name, as listed by /v1/datasets.",
            openapi_examples=_examples(
                flights="flights", uploads="weather_observations_uploads", evaluations="evaluation_results"
            ),
        )

    @app.get(
        f"/{API_VERSION}/datasets/{{name}}",
        response_model=DatasetDetail,
        dependencies=protected,
        tags=["datasets"],
        summary="One dataset, with its upstream and downstream assets",
        responses=problem_responses(401, 404),
    )
    def get_dataset(name: Annotated[str, dataset_path()]) -> DatasetDetail:
        dataset = _dataset(name)
        lineage = catalog.lineage(dataset)
        return DatasetDetail(
            **_summary(dataset).model_dump(), lineage=Lineage(**lineage) if lineage else None
        )

    rows_content = {
        media.split(";")[0]: {} for media in FORMATS.values() if not media.startswith("application/json")
    }
    rows_content["application/vnd.apache.parquet"] = {"schema": {"type": "string", "format": "binary"}}
    rows_content["text/csv"] = {"schema": {"type": "string"}}
    rows_content["application/x-ndjson"] = {"schema": {"type": "string"}}

    @app.get(
        f"/{API_VERSION}/datasets/{{name}}/rows",
        response_model=RowsPage,
        dependencies=protected,
        tags=["rows"],
        summary="A dataset's rows: by partition, filtered, sorted, paginated, in four formats",
        responses={
            200: {
                "description": "A page of rows. Headers: ETag, Last-Modified, X-Next-Cursor, Link.",
                "content": rows_content,
            },
            304: {"description": "Not modified since the ETag or date the client sent."},
            **problem_responses(400, 401, 404),
        },
    )
    def get_rows(
        request: Request,
        name: Annotated[str, dataset_path()],
        partition: Annotated[
            str | None,
            Query(
                description="One partition key (a day `YYYY-MM-DD`, or a dynamic key), or `latest` for the newest "
                "complete (materialized) partition.",
                openapi_examples=_examples(one_day="2013-01-05", latest="latest"),
            ),
        ] = None,
        partition_from: Annotated[
            str | None,
            Query(
                description="First day of a partition range (inclusive); daily datasets only.",
                openapi_examples=_examples(first_day="2013-01-01"),
            ),
        ] = None,
        partition_to: Annotated[
            str | None,
            Query(
                description="Last day of a partition range (inclusive); daily datasets only.",
                openapi_examples=_examples(last_day="2013-01-07"),
            ),
        ] = None,
        columns: Annotated[
            str | None,
            Query(
                description="Comma-separated columns to return, in this order (default: all).",
                openapi_examples=_examples(some="id,carrier,dep_delay"),
            ),
        ] = None,
        filter: Annotated[
            list[str],
            Query(
                description="Repeatable `column:op:value`; op is eq, ne, lt, lte, gt, gte or in. An in-list is "
                "comma-separated or a JSON array. Values are parsed as the column's type.",
                openapi_examples=_examples(
                    range=["dep_delay:gte:30"], in_list=["carrier:in:AA,UA"], equality=["origin:eq:JFK"]
                ),
            ),
        ] = [],  # noqa: B006 (FastAPI copies it)
        sort: Annotated[
            str | None,
            Query(
                description="Comma-separated columns, `-` for descending; the primary key breaks ties.",
                openapi_examples=_examples(by_delay="-dep_delay"),
            ),
        ] = None,
        limit: Annotated[
            int,
            Query(
                ge=1,
                le=q.MAX_LIMIT,
                description="Rows in this page, at most 1,000,000.",
                openapi_examples=_examples(page=1000),
            ),
        ] = 10_000,
        cursor: Annotated[
            str | None,
            Query(
                description="`next_cursor` of the previous page (also in the X-Next-Cursor header).",
                openapi_examples=_examples(next_page="eyJzIjpbImlkIl0sInYiOlsxMDBdfQ"),
            ),
        ] = None,
        format: Annotated[
            Literal["json", "ndjson", "csv", "parquet"] | None,
            Query(
                description="Response format; without it, the Accept header decides, else JSON.",
                openapi_examples=_examples(parquet="parquet", csv="csv"),
            ),
        ] = None,
        if_none_match: Annotated[
            str | None,
            Header(
                description="An ETag from an earlier response: 304 if the data is unchanged.",
                openapi_examples=_examples(etag='"3f2a9c0e7b1d4a5f6e8c9b0a1d2e3f40"'),
            ),
        ] = None,
        if_modified_since: Annotated[
            str | None,
            Header(
                description="An HTTP date: 304 if the dataset was not materialized since.",
                openapi_examples=_examples(date="Tue, 08 Jan 2013 00:00:00 GMT"),
            ),
        ] = None,
    ) -> Response:
        dataset = _dataset(name)
        available = catalog.table_columns(dataset)
        if available is None:
            raise not_found(f"dataset {name!r} has not been materialized yet: its table does not exist")
        fmt = format or _negotiate(request.headers.get("accept", ""))
        selected = q.parse_columns(dataset, available, columns)
        filters = q.parse_filters(dataset, available, filter)
        keys = q.parse_sort(dataset, available, sort)
        after = q.decode_cursor(dataset, keys, cursor) if cursor else None
        partitions = _partition_selection(dataset, available, partition, partition_from, partition_to)

        materialization = catalog.latest_materialization(dataset)
        validators = _validators(
            materialization, [dataset.name, fmt, selected, filters, keys, after, partitions, limit]
        )
        if validators and _not_modified(validators, if_none_match, if_modified_since, materialization):
            return Response(status_code=304, headers=validators)

        table = catalog.table(dataset, available)
        where = [q.filter_clause(table, f) for f in filters]
        if partitions is not None:
            where.append(
                table.c[dataset.partition_column].in_(partitions)
                if isinstance(partitions, list)
                else table.c[dataset.partition_column].between(*partitions)
            )
        if after is not None:
            where.append(q.after_clause(table, keys, after))
        order = q.order_clauses(table, keys)
        # The key columns ride along (and are cut off again) so the page's last row names the
        # next cursor; one row beyond the page says whether there is a next page at all.
        extra = [k.column for k in keys if k.column not in selected]
        key_positions = [(selected + extra).index(k.column) for k in keys]
        statement = (
            sa.select(*(table.c[c] for c in selected + extra))
            .where(*where)
            .order_by(*order)
            .limit(limit + 1)
            .execution_options(yield_per=config.chunk_rows)
        )
        connection = catalog.engine.connect()
        try:
            if connection.dialect.name == "postgresql":
                # The page and the probe below see one snapshot, so the cursor matches the page.
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
            result = connection.execute(statement)
            first = result.fetchmany(config.chunk_rows)
            if len(first) < config.chunk_rows:
                # The whole page is in hand (the usual case): no second query.
                last = first[limit - 1] if len(first) > limit else None
            else:
                # A page larger than a chunk: one cheap query on the key columns finds its end.
                probe = (
                    sa.select(*(table.c[k.column] for k in keys))
                    .where(*where)
                    .order_by(*order)
                    .offset(limit - 1)
                    .limit(2)
                )
                tail = connection.execute(probe).all()
                last = tail[0] if len(tail) == 2 else None
                key_positions = list(range(len(keys)))
            next_cursor = (
                q.encode_cursor(keys, [last[i] for i in key_positions]) if last is not None else None
            )
        except Exception:
            connection.close()
            raise

        def chunks() -> Iterator:
            remaining, width = limit, len(selected)
            try:
                more = result.partitions() if len(first) == config.chunk_rows else ()
                for rows in itertools.chain((first,), more):
                    rows = rows[:remaining]
                    remaining -= len(rows)
                    yield [row[:width] for row in rows] if extra else rows
                    if remaining <= 0:
                        break
            finally:
                result.close()
                connection.close()

        types = [dataset.columns[c] for c in selected]
        header = {
            "dataset": dataset.name,
            "columns": [{"name": c, "type": t} for c, t in zip(selected, types, strict=True)],
            "next_cursor": next_cursor,
        }
        headers = {**validators, "Cache-Control": "private, no-cache"}
        if next_cursor:
            headers["X-Next-Cursor"] = next_cursor
            headers["Link"] = f'<{request.url.include_query_params(cursor=next_cursor)}>; rel="next"'
        return StreamingResponse(
            encode(fmt, chunks(), arrow_schema(selected, types), header),
            media_type=FORMATS[fmt],
            headers=headers,
        )

    @app.get(
        f"/{API_VERSION}/evaluations/{{commit}}",
        response_model=EvaluationsByCommit,
        dependencies=protected,
        tags=["evaluation"],
        summary="Every evaluation of a commit, with its metrics",
        responses=problem_responses(400, 401, 404),
    )
    def get_evaluations(
        commit: Annotated[
            str,
            Path(
                description="A commit SHA or a prefix of at least 4 hex digits.",
                pattern=_COMMIT.pattern,
                openapi_examples=_examples(short="1a2b3c4d", full="1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"),
            ),
        ],
    ) -> EvaluationsByCommit:
        if not _COMMIT.match(commit):
            raise bad_request(f"commit: {commit[:80]!r} is not 4 to 40 hex digits", "commit")
        commit = commit.lower()
        results = catalog.datasets["evaluation_results"]
        metrics = catalog.datasets["evaluation_metrics"]
        result_columns = catalog.table_columns(results)
        if result_columns is None:
            raise not_found("no evaluation has been recorded yet")
        table = catalog.table(results, result_columns)
        # Keys carry short SHAs (`repo@1a2b3c4d`); the commits column may carry full ones.
        matches = table.c.evaluation_key.like(f"%@{commit[:_SHORT_SHA]}%")
        if "commits" in result_columns:
            matches = sa.or_(matches, table.c.commits.like(f"%{commit}%"))
        with catalog.engine.connect() as connection:
            found = [
                dict(row._mapping)
                for row in connection.execute(
                    sa.select(table).where(matches).order_by(table.c.evaluation_key)
                )
            ]
            found = [row for row in found if _names_commit(row, commit)]
            by_key: dict[str, list[dict]] = {row["evaluation_key"]: [] for row in found}
            metric_columns = catalog.table_columns(metrics)
            if by_key and metric_columns:
                metric_table = catalog.table(metrics, metric_columns)
                for row in connection.execute(
                    sa.select(metric_table)
                    .where(metric_table.c.evaluation_key.in_(list(by_key)))
                    .order_by(metric_table.c.metric)
                ):
                    record = dict(row._mapping)
                    by_key[record.pop("evaluation_key")].append(_plain(record))
        if not found:
            raise not_found(f"no evaluation of commit {commit} has been recorded", "commit")
        return EvaluationsByCommit(
            commit=commit,
            evaluations=[
                Evaluation(
                    evaluation_key=row["evaluation_key"],
                    result=_plain(row),
                    metrics=by_key[row["evaluation_key"]],
                )
                for row in found
            ],
        )

    @app.get(
        f"/{API_VERSION}/reports/{{asset_key:path}}",
        dependencies=protected,
        tags=["reports"],
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
        asset_key: Annotated[
            str,
            Path(
                description="The report asset's key; a multi-part key is written with slashes.",
                pattern=_ASSET_KEY.pattern,
                openapi_examples=_examples(daily="daily_delay_report", nested="reports/daily_delay_report"),
            ),
        ],
        partition: Annotated[
            str | None,
            Query(
                description="The partition of a partitioned report; omit for the latest materialization.",
                openapi_examples=_examples(day="2013-01-05"),
            ),
        ] = None,
        if_none_match: Annotated[
            str | None,
            Header(
                description="An ETag from an earlier response: 304 if the report is unchanged.",
                openapi_examples=_examples(etag='"3f2a9c0e7b1d4a5f6e8c9b0a1d2e3f40"'),
            ),
        ] = None,
    ) -> Response:
        if not _ASSET_KEY.match(asset_key):
            raise bad_request(
                f"asset_key: {asset_key[:80]!r} is not an asset key (words joined by /)", "asset_key"
            )
        if partition is not None and not _PARTITION_KEY.match(partition):
            raise bad_request("partition: a partition key is 1 to 256 printable characters", "partition")
        records = catalog.instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=dg.AssetKey(asset_key.split("/")),
                asset_partitions=[partition] if partition is not None else None,
            ),
            limit=1,
        ).records
        what = f"report {asset_key}" + (f" partition {partition}" if partition is not None else "")
        if not records:
            raise not_found(f"{what} has never been materialized")
        entry = records[0].event_log_entry
        html_path = entry.asset_materialization.metadata.get("html_path")
        path_text = getattr(html_path, "path", None) or getattr(html_path, "text", None)
        if not isinstance(path_text, str):
            raise not_found(f"{what}: its latest materialization (run {entry.run_id}) records no html_path")
        path = FilePath(path_text).resolve()
        if not path.is_relative_to(config.state_dir.resolve()):
            raise ApiProblem(
                403, "Forbidden", f"{what}: its HTML file lies outside the project's state folder"
            )
        if not path.is_file():
            raise not_found(f"{what}: the HTML file of run {entry.run_id} no longer exists")
        etag = '"' + hashlib.sha256(f"{records[0].storage_id}|{path}".encode()).hexdigest()[:32] + '"'
        headers = {
            "ETag": etag,
            "Last-Modified": _http_date(entry.timestamp),
            "Cache-Control": "private, no-cache",
            # Rendered notebooks are shown, never run: no script in them may act for the viewer.
            "Content-Security-Policy": "sandbox",
            "X-Content-Type-Options": "nosniff",
        }
        if if_none_match and _etag_matches(if_none_match, etag):
            return Response(status_code=304, headers=headers)
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=headers)

    # -- helpers that need the catalog ---------------------------------------------------
    def _dataset(name: str) -> Dataset:
        dataset = catalog.datasets.get(name) if _DATASET_NAME.match(name) else None
        if dataset is None:
            raise not_found(f"no dataset named {name[:80]!r}; GET /{API_VERSION}/datasets lists them", "name")
        return dataset

    def _summary(dataset: Dataset) -> DatasetSummary:
        materialization = catalog.latest_materialization(dataset)
        return DatasetSummary(
            name=dataset.name,
            description=dataset.description,
            pattern=dataset.pattern,
            asset_key=dataset.asset_key,
            owners=list(dataset.owners),
            columns=[Column(name=c, type=t) for c, t in dataset.columns.items()],
            primary_key=list(dataset.primary_key),
            partitioning=_partitioning(dataset),
            last_materialization=LastMaterialization(
                timestamp=materialization.when,
                run_id=materialization.run_id,
                partition=materialization.partition,
                data_version=materialization.data_version,
            )
            if materialization
            else None,
            row_count=catalog.row_count(dataset),
            checks=catalog.check_results(dataset),
            links={
                "self": f"/{API_VERSION}/datasets/{dataset.name}",
                "rows": f"/{API_VERSION}/datasets/{dataset.name}/rows",
            },
        )

    def _partitioning(dataset: Dataset) -> Partitioning | None:
        if not dataset.partitioning or not dataset.partition_column:
            return None
        materialized = catalog.materialized_partitions(dataset)
        daily = dataset.partitioning == "daily"
        partitions_def = catalog.partitions_definition(dataset)
        start = getattr(partitions_def, "start", None)
        return Partitioning(
            kind="daily" if daily else "dynamic",
            column=dataset.partition_column,
            dynamic_name=None if daily else dataset.partitioning.partition(":")[2] or None,
            first=start.strftime("%Y-%m-%d") if daily and start else None,
            materialized=len(materialized),
            latest=_latest_partition(dataset, materialized),
        )

    def _latest_partition(dataset: Dataset, materialized: set[str] | None = None) -> str | None:
        materialized = catalog.materialized_partitions(dataset) if materialized is None else materialized
        if dataset.partitioning == "daily":
            return max(materialized) if materialized else None
        latest = catalog.latest_materialization(dataset)
        return latest.partition if latest else None

    def _partition_selection(dataset, available, partition, first, last):
        """None (every row), a list of keys, or an inclusive (first, last) range of days."""
        if partition is None and first is None and last is None:
            return None
        if not dataset.partition_column or dataset.partition_column not in available:
            raise bad_request(
                f"dataset {dataset.name!r} is not partitioned; drop partition parameters", "partition"
            )
        if partition is not None and (first is not None or last is not None):
            raise bad_request(
                "partition: give one partition or a range (partition_from, partition_to), not both",
                "partition",
            )
        daily = dataset.partitioning == "daily"
        if partition == LATEST:
            latest = _latest_partition(dataset)
            if latest is None:
                raise not_found(f"no partition of {dataset.name!r} has been materialized yet", "partition")
            return [latest]
        if partition is not None:
            if daily:
                _check_key(dataset, partition, "partition")
            else:
                _check_dynamic_key(partition)
            materialized = catalog.materialized_partitions(dataset)
            if materialized and partition not in materialized:
                span = (
                    f"{min(materialized)} .. {max(materialized)}"
                    if daily
                    else f"{len(materialized)} partitions"
                )
                raise not_found(
                    f"partition {partition!r} of {dataset.name!r} has not been materialized "
                    f"(materialized: {span})",
                    "partition",
                )
            return [partition]
        if not daily:
            raise bad_request(
                f"dataset {dataset.name!r} has dynamic partitions, which have no order; "
                "partition_from and partition_to need a daily dataset",
                "partition_from",
            )
        first = _check_key(dataset, first, "partition_from") if first is not None else "0000-01-01"
        last = _check_key(dataset, last, "partition_to") if last is not None else "9999-12-31"
        if first > last:
            raise bad_request(f"partition_from {first} is after partition_to {last}", "partition_from")
        return (first, last)

    def _check_key(dataset: Dataset, key: str, parameter: str) -> str:
        try:
            day = date.fromisoformat(key) if _DAY.match(key) else None
        except ValueError:
            day = None
        if day is None:
            raise bad_request(
                f"{parameter}: {key[:80]!r} is not a day (YYYY-MM-DD) of daily dataset {dataset.name!r}",
                parameter,
            )
        partitions_def = catalog.partitions_definition(dataset)
        start, end = getattr(partitions_def, "start", None), getattr(partitions_def, "end", None)
        if (start and day < start.date()) or (end and day >= end.date()):
            span = f"{start.date() if start else '...'} to {(end.date() if end else '...')} (exclusive)"
            raise bad_request(
                f"{parameter}: {key} is outside {dataset.name!r}'s partitions, {span}", parameter
            )
        return key

    def _check_dynamic_key(key: str) -> None:
        if not _PARTITION_KEY.match(key):
            raise bad_request("partition: a partition key is 1 to 256 printable characters", "partition")

    app.openapi = lambda: _openapi(app)
    return app


def _openapi(app: FastAPI) -> dict:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        app.openapi_schema = schema
    return app.openapi_schema


def _negotiate(accept: str) -> str:
    for media in (part.split(";")[0].strip().lower() for part in accept.split(",")):
        for fmt, media_type in FORMATS.items():
            if media == media_type.split(";")[0]:
                return fmt
    return "json"


def _validators(materialization: Materialization | None, request_shape: list) -> dict[str, str]:
    """ETag and Last-Modified from the dataset's latest materialization and its data version."""
    if materialization is None:
        return {}
    shape = repr(request_shape)
    token = f"{materialization.storage_id}|{materialization.data_version}|{shape}"
    return {
        "ETag": '"' + hashlib.sha256(token.encode()).hexdigest()[:32] + '"',
        "Last-Modified": _http_date(materialization.timestamp),
    }


def _http_date(timestamp: float) -> str:
    return format_datetime(datetime.fromtimestamp(timestamp, UTC), usegmt=True)


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [part.strip().removeprefix("W/") for part in header.split(",")]
    return "*" in candidates or etag in candidates


def _not_modified(
    validators: dict,
    if_none_match: str | None,
    if_modified_since: str | None,
    materialization: Materialization,
) -> bool:
    if if_none_match is not None:
        # RFC 9110: when If-None-Match is present, If-Modified-Since is ignored.
        return _etag_matches(if_none_match, validators["ETag"])
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError, IndexError):
            return False
        if since is None or since.tzinfo is None:
            return False
        return math.floor(materialization.timestamp) <= since.timestamp()
    return False


def _names_commit(row: dict, commit: str) -> bool:
    text = " ".join(str(row.get(c) or "") for c in ("evaluation_key", "commits")).lower()
    shas = set(_SHA_IN_TEXT.findall(text)) | set(_SHA_AFTER_AT.findall(text))
    # A key's short SHA names a full commit it prefixes, and a prefix names every SHA it starts.
    return any(sha.startswith(commit) or commit.startswith(sha) for sha in shas)


def _plain(record: dict) -> dict:
    """JSON-ready values: timestamps as ISO text, NaN as null."""
    plain = {}
    for key, value in record.items():
        if isinstance(value, (datetime, date)):
            value = value.isoformat()
        elif isinstance(value, float) and not math.isfinite(value):
            value = None
        plain[key] = value
    return plain
