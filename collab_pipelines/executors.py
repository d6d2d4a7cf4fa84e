"""The project's executor: multiprocess by default, Celery workers when run config asks for them.

Runs launched by `dagster dev` or the daemon carry no executor config and must keep working on
a machine without a broker or workers, so the default stays Dagster's own (multiprocess, with
`in_process` available as before). A run whose config selects `celery` instead sends each step
to dagster-celery's workers, with no code change:

    execution:
      config:
        celery:
          broker: {env: DAGSTER_CELERY_BROKER_URL}
          backend: {env: DAGSTER_CELERY_BACKEND_URL}

The `celery` block is exactly dagster-celery's executor config, so the same block directly under
`execution: config:` starts matching workers (deploy/celery.yaml, docs/deploy.md).
"""

import dagster as dg
from dagster_celery import celery_executor

# Each mode delegates to the library that owns it, so its config schema, defaults and
# validation stay the library's and follow its upgrades.
MODES: dict[str, dg.ExecutorDefinition] = {
    "multiprocess": dg.multiprocess_executor,
    "in_process": dg.in_process_executor,
    "celery": celery_executor,
}
DEFAULT_MODE = "multiprocess"


def _mode(executor_config) -> tuple[str, dict]:
    ((name, config),) = executor_config.items()
    return name, config or {}


def _requirements(executor_config) -> list[dg.ExecutorRequirement]:
    name, config = _mode(executor_config)
    return list(MODES[name].get_requirements(config))


@dg.executor(
    name="collab_executor",
    config_schema=dg.Field(
        dg.Selector({name: definition.config_schema.as_field() for name, definition in MODES.items()}),
        default_value={DEFAULT_MODE: {}},
        description="multiprocess (default), in_process, or celery (dagster-celery workers).",
    ),
    requirements=_requirements,
)
def collab_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Multiprocess by default; `celery` in run config fans steps out to Celery workers."""
    name, config = _mode(init_context.executor_config)
    definition = MODES[name]
    return definition.executor_creation_fn(
        dg.InitExecutorContext(
            job=init_context.job,
            executor_def=definition,
            executor_config=config,
            instance=init_context.instance,
        )
    )
