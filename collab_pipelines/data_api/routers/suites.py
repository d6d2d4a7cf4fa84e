"""`/v1/suites/{suite}/champion`: a suite's champion, and every promotion and demotion."""

import json
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Path

from collab_pipelines.data_api.deps import PREFIX, PROTECTED, Config, Grant, examples
from collab_pipelines.data_api.models import ChampionChange, SuiteChampion
from collab_pipelines.data_api.problems import ApiProblem, not_found, problem_responses
from collab_pipelines.evaluation.champion import champion_of, read_history
from collab_pipelines.evaluation.records import RESULTS

router = APIRouter(prefix=f"{PREFIX}/suites", tags=["evaluation"], dependencies=PROTECTED)
SUITE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


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
    suite: Annotated[
        str,
        Path(
            description="A suite's name, as in the suites file.",
            pattern=SUITE_PATTERN,
            openapi_examples=examples(suite="delay-model"),
        ),
    ],
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
