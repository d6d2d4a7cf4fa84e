"""What every route depends on: the configuration, the token check and the dataset catalog."""

from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from collab_pipelines.data_api.audit import AuditLog
from collab_pipelines.data_api.auth import ReloadingTokens, TokenEntry
from collab_pipelines.data_api.catalog import DatasetCatalog
from collab_pipelines.data_api.problems import ApiProblem, not_found
from collab_pipelines.warehouse.datasets import Dataset

API_VERSION = "v1"
PREFIX = f"/{API_VERSION}"
DATASET_NAME_PATTERN = r"^[A-Za-z0-9_]{1,64}$"


@dataclass
class ApiConfig:
    catalog: DatasetCatalog
    tokens: ReloadingTokens
    # Rendered reports live here ($COLLAB_SHARED_DIR); the reports route serves no file outside it.
    shared_dir: FilePath
    audit: AuditLog
    chunk_rows: int = 5_000


def examples(**values) -> dict:
    """OpenAPI examples, one per keyword: Swagger UI offers each by its name."""
    return {name: {"summary": name.replace("_", " "), "value": value} for name, value in values.items()}


# What routes depend on is a coroutine where it does not block (a token check is one hash and
# one stat of the tokens file): FastAPI runs a plain function in a worker thread, and that hop
# costs more than the function. The token check and the dataset lookup read the configuration
# from the request rather than depend on `Config`: FastAPI resolves each dependency anew on every
# request, at a cost that is a good part of a small page's.
async def get_config(request: Request) -> ApiConfig:
    return request.app.state.config


async def get_catalog(config: Annotated[ApiConfig, Depends(get_config)]) -> DatasetCatalog:
    return config.catalog


Config = Annotated[ApiConfig, Depends(get_config)]
Catalog = Annotated[DatasetCatalog, Depends(get_catalog)]

bearer = HTTPBearer(auto_error=False, description="A token issued by `collab-data-api token <name>`.")


def check_token(config: ApiConfig, credentials: HTTPAuthorizationCredentials | None) -> TokenEntry:
    if credentials is None:
        raise ApiProblem(401, "Unauthorized", "send Authorization: Bearer <token>")
    entry = config.tokens.entry_for(credentials.credentials)
    if entry is None:
        raise ApiProblem(401, "Unauthorized", "this token is not valid")
    # Checked on every request, not when the file is read: a token expires mid-session.
    refusal = entry.refusal()
    if refusal is not None:
        raise ApiProblem(401, "Unauthorized", refusal)
    return entry


async def authenticated(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)], request: Request
) -> TokenEntry:
    return check_token(request.app.state.config, credentials)


PROTECTED = [Depends(authenticated)]
# The same dependency as PROTECTED's, so FastAPI checks the token once per request.
Grant = Annotated[TokenEntry, Depends(authenticated)]


def no_dataset_named(name: str) -> ApiProblem:
    """The one answer for a dataset that does not exist and for one outside the token's scope."""
    return not_found(f"no dataset named {name[:80]!r}; GET {PREFIX}/datasets lists them", "name")


async def dataset_named(
    name: Annotated[
        str,
        Path(
            description="A dataset's name, as listed by /v1/datasets.",
            pattern=DATASET_NAME_PATTERN,
            openapi_examples=examples(
                flights="flights", uploads="weather_observations_uploads", evaluations="evaluation_results"
            ),
        ),
    ],
    request: Request,
    grant: Grant,
) -> Dataset:
    dataset = request.app.state.config.catalog.datasets.get(name)
    if dataset is None or not grant.scope.allows_dataset(dataset):
        raise no_dataset_named(name)
    return dataset


DatasetFromPath = Annotated[Dataset, Depends(dataset_named)]


IfNoneMatch = Annotated[
    str | None,
    Header(
        description="An ETag from an earlier response: 304 if what it names is unchanged.",
        openapi_examples=examples(etag='"3f2a9c0e7b1d4a5f6e8c9b0a1d2e3f40"'),
    ),
]


def etag_matches(header: str, etag: str) -> bool:
    candidates = [part.strip().removeprefix("W/") for part in header.split(",")]
    return "*" in candidates or etag in candidates
