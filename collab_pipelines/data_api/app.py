"""The FastAPI application factory: versioned, documented, token-protected read access to the warehouse.

Each resource has its router (`routers/`), every route gets the configuration, the token check
and the dataset catalog as dependencies (`deps.py`), and every error leaves as a problem
document from one place (`problems.py`).
"""

import importlib.resources
from pathlib import Path as FilePath

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from collab_pipelines.data_api.deps import ApiConfig
from collab_pipelines.data_api.models import Health
from collab_pipelines.data_api.openapi import per_dataset_rows
from collab_pipelines.data_api.problems import Problem, RequestLimits, install_problem_handlers
from collab_pipelines.data_api.routers import datasets, evaluations, reports, rows

DOCS_ASSETS_PATH = "/docs-assets"
# Far above any request the API documents (a 1,000-value in-list is about 20 kB).
MAX_QUERY_BYTES = 32 * 1024
MAX_HEADER_BYTES = 64 * 1024

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
  streamed. A date-time filter value carries no UTC offset, unless its column holds a time zone.
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
    # Served from packaged assets: FastAPI's default loads Swagger UI from a CDN, which a
    # closed network (or a strict proxy) turns into a blank page.
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="collab_pipelines data API - docs",
        swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
    )


def docs_assets() -> FilePath:
    """Swagger UI's files, as the fastapi-offline package ships them."""
    return FilePath(str(importlib.resources.files("fastapi_offline") / "static"))


def create_app(config: ApiConfig) -> FastAPI:
    app = FastAPI(
        title="collab_pipelines data API",
        version="1.0.0",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.config = config
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=str(docs_assets())), name="docs-assets")
    for router in (service, datasets.router, rows.router, evaluations.router, reports.router):
        app.include_router(router)
    install_problem_handlers(app)
    app.add_middleware(RequestLimits, max_query_bytes=MAX_QUERY_BYTES, max_header_bytes=MAX_HEADER_BYTES)
    app.openapi = lambda: _openapi(app, config)
    return app


def _openapi(app: FastAPI, config: ApiConfig) -> dict:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schema = per_dataset_rows(schema, config.catalog)
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        app.openapi_schema = schema
    return app.openapi_schema
