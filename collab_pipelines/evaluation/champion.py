"""The champion of each suite: the evaluated, passing commit (or combination) the product uses.

No Dagster. Every promotion and demotion is one row of the warehouse table `champion_history`
(declared in datasets.py): who, when, why, from which evaluation key and to which. The
champion is the newest row's key, or none when that row is a demotion. It changes through the
promote_champion job (a person) or through the suite's policy (`champion: {policy:
last_passing, branch: main}`), and a git tag `collab/champion/<suite>` marks its commit in the
contract repository.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from collab_pipelines.evaluation.records import PASSED, RESULTS
from collab_pipelines.evaluation.repos import GitError, GitRepository
from collab_pipelines.evaluation.suites import EvaluationKey, EvaluationKeyError, Suite
from collab_pipelines.warehouse.engine import WarehouseError, describe, insert_frame
from collab_pipelines.warehouse.resources import Warehouse
from collab_pipelines.warehouse.tables import TableLayout

if TYPE_CHECKING:
    from collab_pipelines.evaluation.commit_evaluation import Evaluation

HISTORY = "champion_history"
PROMOTE, DEMOTE = "promote", "demote"
POLICY_BY = "policy:last_passing"
TAG_PREFIX = "collab/champion/"
COLUMNS = ("suite", "action", "evaluation_key", "previous_key", "commits", "by", "reason", "run_id", "at")
_LAYOUT = TableLayout(indexes=(("suite",),))


class ChampionError(ValueError):
    """A promotion or demotion that was refused; the message names the key and why."""


@dataclass(frozen=True)
class Change:
    """One row of champion_history."""

    suite: str
    action: str
    evaluation_key: str | None
    previous_key: str | None
    commits: dict[str, str]
    by: str
    reason: str
    run_id: str
    at: datetime


def tag_name(suite_name: str) -> str:
    return TAG_PREFIX + suite_name


def read_history(engine: sa.Engine, suite_name: str) -> list[dict]:
    """The suite's rows, oldest first; [] when nothing was ever promoted."""
    with engine.connect() as connection:
        return _rows(connection, suite_name)


def champion_of(rows: list[dict]) -> dict | None:
    """The row that made the champion: the newest, unless it is a demotion."""
    return rows[-1] if rows and rows[-1]["action"] == PROMOTE else None


def current_champion(warehouse: Warehouse, suite_name: str) -> str | None:
    row = champion_of(read_history(warehouse.engine(), suite_name))
    return row["evaluation_key"] if row else None


def history(warehouse: Warehouse, suite_name: str) -> pd.DataFrame:
    return pd.DataFrame(read_history(warehouse.engine(), suite_name), columns=list(COLUMNS))


def promote(
    warehouse: Warehouse, suite: Suite, evaluation_key: str, by: str, reason: str, run_id: str
) -> Change:
    """Make `evaluation_key`, a passed evaluation of `suite`, its champion."""

    def check(connection: sa.Connection, current: str | None) -> dict[str, str]:
        where = f"promoting {evaluation_key} to champion of suite {suite.name!r}"
        try:
            named = EvaluationKey.parse(evaluation_key).suite
        except EvaluationKeyError as error:
            raise ChampionError(f"{where}: {error}") from None
        if named != suite.name:
            raise ChampionError(f"{where}: the key is an evaluation of suite {named!r}")
        if current == evaluation_key:
            raise ChampionError(f"{where}: it is already the champion")
        status, commits = _result(connection, evaluation_key)
        if status is None:
            raise ChampionError(f"{where}: no evaluation of it is recorded in {RESULTS}")
        if status != PASSED:
            raise ChampionError(f"{where}: its evaluation is {status}, and only a passed one can be champion")
        return commits

    return _change(warehouse, suite.name, PROMOTE, evaluation_key, check, by, reason, run_id)


def demote(
    warehouse: Warehouse,
    suite: Suite,
    by: str,
    reason: str,
    run_id: str,
    evaluation_key: str | None = None,
) -> Change:
    """Leave `suite` without a champion; `evaluation_key`, if given, must be the current one."""

    def check(_connection: sa.Connection, current: str | None) -> dict[str, str]:
        if current is None:
            raise ChampionError(f"demoting the champion of suite {suite.name!r}: the suite has none")
        if evaluation_key is not None and evaluation_key != current:
            raise ChampionError(
                f"demoting {evaluation_key} from champion of suite {suite.name!r}: the champion is {current}"
            )
        return {}

    return _change(warehouse, suite.name, DEMOTE, None, check, by, reason, run_id)


def _change(warehouse: Warehouse, suite_name, action, key, check, by, reason, run_id) -> Change:
    """Check and write one row in one transaction, so two promotions cannot both pass the check."""
    if not reason.strip():
        raise ChampionError(f"{action} in suite {suite_name!r}: a reason is required")
    engine = warehouse.engine()
    try:
        with engine.begin() as connection:
            rows = _rows(connection, suite_name)
            current = champion_of(rows)
            commits = check(connection, current["evaluation_key"] if current else None)
            now = datetime.now(UTC).replace(tzinfo=None)
            # The newest row is the champion: never let a coarse clock give two rows one time.
            at = (
                max(now, pd.Timestamp(rows[-1]["at"]).to_pydatetime() + timedelta(microseconds=1))
                if rows
                else now
            )
            change = Change(
                suite_name,
                action,
                key,
                current["evaluation_key"] if current else None,
                commits,
                by,
                reason,
                run_id,
                at,
            )
            insert_frame(connection, HISTORY, _frame(change), layout=_LAYOUT)
    except (ChampionError, WarehouseError):
        raise
    except sa.exc.SQLAlchemyError as error:
        raise WarehouseError(
            f"recording the {action} in suite {suite_name!r} in {describe(engine)} failed: {error}"
        ) from error
    return change


def _frame(change: Change) -> pd.DataFrame:
    row = {name: getattr(change, name) for name in COLUMNS}
    row["commits"] = json.dumps(change.commits, sort_keys=True)
    frame = pd.DataFrame([row], columns=list(COLUMNS))
    frame["at"] = pd.to_datetime(frame["at"])
    for column in ("evaluation_key", "previous_key"):
        frame[column] = frame[column].astype(object)
    return frame


def _rows(connection: sa.Connection, suite_name: str) -> list[dict]:
    if not sa.inspect(connection).has_table(HISTORY):
        return []
    table = sa.Table(HISTORY, sa.MetaData(), autoload_with=connection)
    query = sa.select(table).where(table.c.suite == suite_name).order_by(table.c.at)
    return [dict(row._mapping) for row in connection.execute(query)]


def _result(connection: sa.Connection, key: str) -> tuple[str | None, dict[str, str]]:
    if not sa.inspect(connection).has_table(RESULTS):
        return None, {}
    table = sa.Table(RESULTS, sa.MetaData(), autoload_with=connection)
    row = connection.execute(
        sa.select(table.c.status, table.c.commits).where(table.c.evaluation_key == key)
    ).first()
    return (row.status, json.loads(row.commits or "{}")) if row else (None, {})


def mark(suite: Suite, repository: GitRepository, change: Change, log) -> None:
    """Move the tag `collab/champion/<suite>` to the champion's contract commit (or remove it on
    a demotion). Best effort: the change is recorded already, so a failure is a warning."""
    sha = change.commits.get(suite.contract_repository) if change.action == PROMOTE else None
    try:
        repository.sync()
        repository.set_tag(tag_name(suite.name), sha)
    except GitError as error:
        log.warning(
            f"the tag {tag_name(suite.name)} in repository {suite.contract_repository!r} was not moved: {error}"
        )


def apply_policy(evaluation: Evaluation, warehouse: Warehouse, run_id: str, log) -> None:
    """The suite's `last_passing` policy, after an evaluation is recorded.

    Never fails the evaluation: its verdict is recorded already, and a champion left
    unchanged is a warning in the run's logs.
    """
    checkout = evaluation.checkout
    suite = checkout.suite
    if suite.champion.policy != "last_passing" or evaluation.status != PASSED:
        return
    try:
        change = _last_passing(checkout, warehouse, run_id)
    except Exception as error:  # noqa: BLE001 - whatever went wrong, the verdict stands
        if log:
            log.warning(
                f"the champion policy of suite {suite.name!r} was not applied to {checkout.key}: {error}"
            )
        return
    if change is not None:
        mark(suite, checkout.repositories[suite.contract_repository], change, log)


def _last_passing(checkout, warehouse: Warehouse, run_id: str) -> Change | None:
    suite, key = checkout.suite, str(checkout.key)
    branch = suite.champion.branch
    repo = checkout.repositories[suite.contract_repository]
    sha = checkout.contract_commit.sha
    # First-parent history, as the commit sensor walks a branch: a commit only merged in from
    # another branch was evaluated there, not on this one.
    on_branch = repo.ancestors(repo.head(branch))
    if sha not in on_branch:
        return None
    current = current_champion(warehouse, suite.name)
    if current == key:
        return None
    if current is not None:
        current_sha = _contract_sha(warehouse, current, suite)
        # A re-evaluation of an older commit (a backfill) does not take the place of a newer champion.
        if current_sha in on_branch and on_branch.index(current_sha) < on_branch.index(sha):
            return None
    reason = f"evaluation passed on branch {branch!r} (policy last_passing)"
    return promote(warehouse, suite, key, POLICY_BY, reason, run_id)


def _contract_sha(warehouse: Warehouse, key: str, suite: Suite) -> str | None:
    with warehouse.engine().connect() as connection:
        return _result(connection, key)[1].get(suite.contract_repository)


def promoted_in_run(warehouse: Warehouse, suite_name: str, run_id: str) -> Change | None:
    """The change this run made to the suite's champion, if its newest row is this run's."""
    rows = read_history(warehouse.engine(), suite_name)
    if not rows or rows[-1]["run_id"] != run_id:
        return None
    return row_change(rows[-1])


def row_change(row: dict) -> Change:
    values = {name: row[name] for name in COLUMNS}
    values["commits"] = json.loads(values["commits"] or "{}")
    values["at"] = pd.Timestamp(values["at"]).to_pydatetime()
    return Change(**values)
