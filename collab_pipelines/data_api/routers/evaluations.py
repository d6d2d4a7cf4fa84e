"""`/v1/evaluations/{commit}`: every evaluation of a commit, with its metrics."""

import math
import re
from datetime import date, datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Path

from collab_pipelines.data_api.deps import PREFIX, PROTECTED, Config, Grant, examples
from collab_pipelines.data_api.models import Evaluation, EvaluationsByCommit
from collab_pipelines.data_api.problems import bad_request, not_found, problem_responses
from collab_pipelines.data_api.scope import evaluation_suite

router = APIRouter(prefix=f"{PREFIX}/evaluations", tags=["evaluation"], dependencies=PROTECTED)
_COMMIT = re.compile(r"^[0-9a-fA-F]{4,40}$")
_SHORT_SHA = 8
_SHA_IN_TEXT = re.compile(r"(?<![0-9a-z])[0-9a-f]{7,40}(?![0-9a-z])")
_SHA_AFTER_AT = re.compile(r"@([0-9a-f]{4,40})")


@router.get(
    "/{commit}",
    response_model=EvaluationsByCommit,
    summary="Every evaluation of a commit, with its metrics",
    responses=problem_responses(400, 401, 404),
)
def get_evaluations(
    commit: Annotated[
        str,
        Path(
            description="A commit SHA or a prefix of at least 4 hex digits.",
            pattern=_COMMIT.pattern,
            openapi_examples=examples(short="1a2b3c4d", full="1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"),
        ),
    ],
    config: Config,
    grant: Grant,
) -> EvaluationsByCommit:
    catalog = config.catalog
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
            for row in connection.execute(sa.select(table).where(matches).order_by(table.c.evaluation_key))
        ]
        # Another suite's evaluation is left out as if it had never run.
        found = [row for row in found if _names_commit(row, commit) and grant.scope.allows_suite(_suite(row))]
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
    config.audit.record(
        grant.name,
        "evaluations",
        commit=commit,
        suites=sorted({_suite(row) for row in found}),
        partition=[row["evaluation_key"] for row in found],
        rows=len(found),
    )
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


def _suite(row: dict) -> str:
    # The key names the suite (`suite:repo@sha`), as report partitions do: one rule for both.
    return evaluation_suite(row["evaluation_key"]) or row.get("suite") or ""


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
