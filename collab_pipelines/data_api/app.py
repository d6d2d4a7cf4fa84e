"""The FastAPI application factory: versioned, documented, token-protected read access to the warehouse.

Each resource has its router (`routers/`), every route gets the configuration, the token check
and the dataset catalog as dependencies (`deps.py`), and every error leaves as a problem
document from one place (`problems.py`).
"""

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from collab_pipelines.data_api.deps import ApiConfig
from collab_pipelines.data_api.docs import (
    DOCS_ASSETS_PATH,
    OPENAPI_PATH,
    docs_assets,
    docs_page,
    openapi_document,
)
from collab_pipelines.data_api.models import Health
from collab_pipelines.data_api.problems import RequestLimits, install_problem_handlers
from collab_pipelines.data_api.routers import datasets, evaluations, reports, rows, suites

# Far above any request the API documents (a 1,000-value in-list is about 20 kB).
MAX_QUERY_BYTES = 32 * 1024
MAX_HEADER_BYTES = 64 * 1024

DESCRIPTION = """
Read the project's warehouse, the same tables its Dagster assets write, without asking anyone
for an export.

* **Authentication**: every endpoint but `/health`, this page and its document needs
  `Authorization: Bearer <token>`. A token may read only some datasets, suites and reports;
  anything else is `404` to it, as if it did not exist. Without a token this document shows
  no dataset; "Authorize" with yours to see the datasets it may read. An administrator issues
  a token with `collab-data-api token <your-name>`.
* **Datasets** lists what there is: columns and types, partitioning, last materialization,
  row count, latest check results, owners. One dataset adds its lineage.
* **Rows** reads a dataset by partition, partition range or `partition=latest`, with column
  selection, typed filters (`filter=column:op:value`, op one of eq, ne, lt, lte, gt, gte, in),
  sort and keyset pagination (`next_cursor`), as JSON, NDJSON, CSV or Parquet. Responses are
  streamed. A date-time filter value carries no UTC offset, unless its column holds a time zone.
* **Champion**: `/v1/suites/{suite}/champion` is the evaluation a suite's product uses, with
  every promotion and demotion: who, when, why, from which evaluation key to which.
* **Caching**: row responses carry an `ETag` (and, where the rows carry a write time,
  `Last-Modified`) computed from the rows asked for; send them back in `If-None-Match` /
  `If-Modified-Since` to get `304`.
* **Errors** are `application/problem+json` documents whose `detail` says what was wrong.
"""

service = APIRouter(tags=["service"])


@service.get("/health", response_model=Health, summary="Liveness, without a token")
def health() -> Health:
    return Health(status="ok")


@service.get("/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    return docs_page("collab_pipelines data API - docs")


service.add_api_route(OPENAPI_PATH, openapi_document, include_in_schema=False)


def create_app(config: ApiConfig) -> FastAPI:
    app = FastAPI(
        title="collab_pipelines data API",
        version="1.0.0",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        # Served by docs.openapi_document, one document per token scope.
        openapi_url=None,
    )
    app.state.config = config
    app.state.openapi_by_datasets = {}
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=str(docs_assets())), name="docs-assets")
    for router in (service, datasets.router, rows.router, evaluations.router, suites.router, reports.router):
        app.include_router(router)
    install_problem_handlers(app)
    app.add_middleware(RequestLimits, max_query_bytes=MAX_QUERY_BYTES, max_header_bytes=MAX_HEADER_BYTES)
    return app
