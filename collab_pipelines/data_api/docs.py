"""`/docs` and `/openapi.json`: the document each token may see, and none of the data without one.

A browser cannot send a bearer token when it opens a page, so the Swagger UI page and the
document without a token are open, and that document shows no dataset: the endpoints and their
parameters only. With a token (Swagger UI's "Authorize" sends it), the document has one rows
operation per dataset in that token's scope and no other.
"""

import importlib.resources
import json
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from collab_pipelines.data_api.deps import ApiConfig, bearer, check_token
from collab_pipelines.data_api.openapi import per_dataset_rows
from collab_pipelines.data_api.problems import Problem
from collab_pipelines.data_api.scope import NOTHING, Scope

DOCS_ASSETS_PATH = "/docs-assets"
OPENAPI_PATH = "/openapi.json"
ANONYMOUS = Scope(NOTHING, NOTHING, NOTHING)

# Swagger UI from packaged assets: FastAPI's default loads it from a CDN, which a closed
# network (or a strict proxy) turns into a blank page. After "Authorize" the page fetches the
# document again with the token, which then lists that token's datasets; the token stays in
# this page's memory only.
_DOCS_PAGE = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<link type="text/css" rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="shortcut icon" href="{assets}/favicon.png">
<title>{title}</title>
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
let token = null;
const ui = SwaggerUIBundle({{
  url: {openapi},
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  requestInterceptor: (request) => {{
    if (token && request.url.endsWith({openapi})) request.headers.Authorization = "Bearer " + token;
    return request;
  }},
}});
const authorize = ui.authActions.authorize;
ui.authActions.authorize = (payload) => {{
  const result = authorize(payload);
  const value = payload && payload.HTTPBearer && payload.HTTPBearer.value;
  if (value) {{
    token = value;
    ui.specActions.download({openapi});
  }}
  return result;
}};
const logout = ui.authActions.logout;
ui.authActions.logout = (names) => {{
  const result = logout(names);
  token = null;
  ui.specActions.download({openapi});
  return result;
}};
</script>
</body>
</html>
"""


def docs_assets() -> FilePath:
    """Swagger UI's files, as the fastapi-offline package ships them."""
    return FilePath(str(importlib.resources.files("fastapi_offline") / "static"))


def docs_page(title: str) -> HTMLResponse:
    return HTMLResponse(
        _DOCS_PAGE.format(assets=DOCS_ASSETS_PATH, title=title, openapi=json.dumps(OPENAPI_PATH))
    )


async def openapi_document(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> JSONResponse:
    config: ApiConfig = request.app.state.config
    # A token that is sent must be good: an expired or revoked one is told so, not shown less.
    grant = check_token(config, credentials) if credentials else None
    scope = grant.scope if grant else ANONYMOUS
    names = tuple(sorted(n for n, d in config.catalog.datasets.items() if scope.allows_dataset(d)))
    document = await run_in_threadpool(scoped_openapi, request.app, config, names)
    if grant is not None:
        config.audit.record(grant.name, "openapi", datasets=list(names), rows=len(names))
    return JSONResponse(document)


def scoped_openapi(app: FastAPI, config: ApiConfig, names: tuple[str, ...]) -> dict:
    """The document with rows operations for `names` only, built once per set of names."""
    cache: dict[tuple[str, ...], dict] = app.state.openapi_by_datasets
    document = cache.get(names)
    if document is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        document = per_dataset_rows(schema, config.catalog, names)
        document.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
            Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        )
        cache[names] = document
    return document
