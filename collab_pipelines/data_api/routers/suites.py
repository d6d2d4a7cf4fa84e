"""`/v1/suites/{suite}`: a suite's champion, and what a local try needs to judge as the server does.

`/champion` is the champion with every promotion and demotion. The suite itself (its pinned
fields, gates and passed evaluations), one evaluation's result and its predictions are what
`collab-eval try` reads to give a data scientist's working tree the server's verdict.
"""

import io
import json
from typing import Annotated

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from fastapi import APIRouter, Path
from fastapi.responses import Response

from collab_pipelines import settings
from collab_pipelines.data_api.deps import PREFIX, PROTECTED, Config, Grant, examples
from collab_pipelines.data_api.formats import FORMATS
from collab_pipelines.data_api.models import (
    ChampionChange,
    EvaluationResult,
    PassingEvaluation,
    SuiteChampion,
    SuiteSettings,
)
from collab_pipelines.data_api.problems import ApiProblem, bad_request, not_found, problem_responses
from collab_pipelines.data_api.routers.evaluations import _plain
from collab_pipelines.evaluation.champion import champion_of, read_history
from collab_pipelines.evaluation.records import PASSED, PREDICTIONS, RESULTS
from collab_pipelines.evaluation.suites import (
    EvaluationKey,
    EvaluationKeyError,
    SuiteConfigError,
    load_suites,
)

router = APIRouter(prefix=f"{PREFIX}/suites", tags=["evaluation"], dependencies=PROTECTED)
SUITE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SuiteName = Annotated[
    str,
    Path(
        description="A suite's name, as in the suites file.",
        pattern=SUITE_PATTERN,
        openapi_examples=examples(suite="delay-model"),
    ),
]
_NAME = "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
KEY_PATTERN = f"^{_NAME}:{_NAME}@[0-9a-f]{{7,40}}(\\+{_NAME}@[0-9a-f]{{7,40}}){{0,15}}$"
KeyInPath = Annotated[
    str,
    Path(
        description="An evaluation key of the suite, as `suite:repository@sha`.",
        pattern=KEY_PATTERN,
        openapi_examples=examples(key="delay-model:model@1a2b3c4d5e"),
    ),
]
# What a try needs to judge as the server does; nothing that says where a repository lives, how
# notes are pushed or which variable holds a host's token.
TRY_SETTINGS = ("contract", "baseline", "limits", "pinned", "allowed_env", "contract_changes", "unsandboxed")


def no_suite_named(suite: str) -> ApiProblem:
    """The one answer for a suite never evaluated and for one outside the token's scope."""
    return not_found(f"no suite named {suite[:80]!r} has been evaluated", "suite")


@router.get(
    "/{suite}/champion",
    response_model=SuiteChampion,
    summary="A suite's champion, with every promotion and demotion",
    responses=problem_responses(400, 401, 404),
)
def get_champion(
    suite: SuiteName,
    config: Config,
    grant: Grant,
) -> SuiteChampion:
    if not grant.scope.allows_suite(suite):
        raise no_suite_named(suite)
    rows = read_history(config.catalog.engine, suite)
    if not rows and not _evaluated(config, suite):
        raise no_suite_named(suite)
    config.audit.record(grant.name, "champion", suites=[suite], rows=len(rows))
    current = champion_of(rows)
    return SuiteChampion(
        suite=suite,
        champion=_change(current) if current else None,
        history=[_change(row) for row in rows],
    )


def _evaluated(config, suite: str) -> bool:
    catalog = config.catalog
    results = catalog.datasets[RESULTS]
    columns = catalog.table_columns(results)
    if columns is None or "suite" not in columns:
        return False
    table = catalog.table(results, columns)
    with catalog.engine.connect() as connection:
        return (
            connection.execute(sa.select(table.c.suite).where(table.c.suite == suite).limit(1)).first()
            is not None
        )


def _change(row: dict) -> ChampionChange:
    return ChampionChange(**{**row, "commits": json.loads(row["commits"] or "{}")})


@router.get(
    "/{suite}",
    response_model=SuiteSettings,
    summary="A suite's decisive settings and passed evaluations, for a local try",
    responses=problem_responses(400, 401, 404),
)
def get_suite(suite: SuiteName, config: Config, grant: Grant) -> SuiteSettings:
    if not grant.scope.allows_suite(suite):
        raise no_suite_named(suite)
    try:
        found = load_suites(settings.suites_file()).get(suite)
    except SuiteConfigError as error:
        raise ApiProblem(500, "Suites file invalid", str(error)) from error
    if found is None:
        raise no_suite_named(suite)
    dumped = found.model_dump(mode="json", include=set(TRY_SETTINGS))
    dumped["repositories"] = {name: {"location": name} for name in found.repositories}
    passing = [
        PassingEvaluation(evaluation_key=row["evaluation_key"], commits=_commits(row["commits"]))
        for row in _results(config, suite=suite, status=PASSED)
    ]
    config.audit.record(grant.name, "suite", suites=[suite], rows=len(passing))
    return SuiteSettings(suite=suite, settings=dumped, passing=passing)


@router.get(
    "/{suite}/evaluations/{key}",
    response_model=EvaluationResult,
    summary="One evaluation's recorded result (its data version, split, contract, verdict)",
    responses=problem_responses(400, 401, 404),
)
def get_result(suite: SuiteName, key: KeyInPath, config: Config, grant: Grant) -> EvaluationResult:
    _check_key(suite, key, grant)
    rows = _results(config, evaluation_key=key)
    if not rows:
        raise not_found(f"no evaluation {key[:120]!r} has been recorded", "key")
    config.audit.record(grant.name, "evaluation", suites=[suite], partition=key, rows=1)
    return EvaluationResult(evaluation_key=key, result=_plain(rows[0]))


@router.get(
    "/{suite}/evaluations/{key}/predictions",
    summary="One evaluation's predictions on its test rows, as Parquet",
    response_class=Response,
    responses={
        200: {
            "description": "row_id, y_true, y_pred, y_score of each test row.",
            "content": {FORMATS["parquet"]: {"schema": {"type": "string", "format": "binary"}}},
        },
        **problem_responses(400, 401, 404),
    },
)
def get_predictions(suite: SuiteName, key: KeyInPath, config: Config, grant: Grant) -> Response:
    _check_key(suite, key, grant)
    catalog = config.catalog
    dataset = catalog.datasets[PREDICTIONS]
    if not _results(config, evaluation_key=key):
        raise not_found(f"no evaluation {key[:120]!r} has been recorded", "key")
    columns = catalog.table_columns(dataset)
    rows = []  # a failed evaluation predicted nothing
    if columns is not None:
        table = catalog.table(dataset, columns)
        wanted = [table.c[name] for name in ("row_id", "y_true", "y_pred", "y_score")]
        with catalog.engine.connect() as connection:
            rows = connection.execute(sa.select(*wanted).where(table.c.evaluation_key == key)).all()
    arrow = pa.table(
        {
            "row_id": pa.array([row[0] for row in rows], pa.string()),
            "y_true": pa.array([row[1] for row in rows], pa.int64()),
            "y_pred": pa.array([row[2] for row in rows], pa.int64()),
            "y_score": pa.array([row[3] for row in rows], pa.float64()),
        }
    )
    body = io.BytesIO()
    pq.write_table(arrow, body)
    config.audit.record(grant.name, "predictions", suites=[suite], partition=key, rows=len(rows))
    return Response(body.getvalue(), media_type=FORMATS["parquet"])


def _commits(text: str | None) -> dict[str, str]:
    """The commits of a result row: JSON written by the evaluation; anything else names none."""
    try:
        commits = json.loads(text or "{}")
    except ValueError:
        return {}
    return commits if isinstance(commits, dict) else {}


def _check_key(suite: str, key: str, grant) -> None:
    try:
        named = EvaluationKey.parse(key).suite
    except EvaluationKeyError as error:
        raise bad_request(str(error), "key") from error
    # A key of another suite, or of one outside the token's scope: as if the suite did not exist.
    if named != suite or not grant.scope.allows_suite(suite):
        raise no_suite_named(suite)


def _results(config, **equal) -> list[dict]:
    catalog = config.catalog
    results = catalog.datasets[RESULTS]
    columns = catalog.table_columns(results)
    if columns is None:
        return []
    table = catalog.table(results, columns)
    with catalog.engine.connect() as connection:
        where = [table.c[name] == value for name, value in equal.items()]
        rows = connection.execute(sa.select(table).where(*where).order_by(table.c.evaluation_key))
        return [dict(row._mapping) for row in rows]
