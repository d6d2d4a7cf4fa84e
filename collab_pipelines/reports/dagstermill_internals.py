"""The one module that reaches into dagstermill's (and Dagster's) private parts, and why.

dagstermill's public API (`define_dagstermill_asset`) runs one notebook per kernel inside its
own op. Report steps render many partitions in one kept kernel (kernel.py) and write each
partition's notebook themselves (injection.py), so they need three pieces dagstermill keeps
private:

- `get_papermill_parameters` and `DagsterTranslator.codify`: the injected cell that rebuilds
  `context` inside the kernel, for this step. They take the step's execution context, which
  only `OpExecutionContext.get_step_execution_context()` (not public either) gives.
- `DagstermillEngine` and `DagstermillNotebookClient`: the papermill engine that runs
  dagstermill's teardown cell; the warm kernel's engine subclasses them to hand them a kept
  kernel.

collab_pipelines_tests/test_dagster_internals.py checks each name and signature used here, so a
Dagster or dagstermill upgrade that moves one fails there, by name, before any report does.
docs/architecture.md lists this module and collab_pipelines/dagster_internals.py (Dagster's own
private parts) as the only two users of private internals.
"""

from __future__ import annotations

import os
import warnings

import dagster as dg

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    from dagstermill.engine import DagstermillEngine, DagstermillNotebookClient
    from dagstermill.factory import get_papermill_parameters
    from dagstermill.translator import DagsterTranslator

__all__ = ["DagstermillEngine", "DagstermillNotebookClient", "context_cell"]


def context_cell(context: dg.AssetExecutionContext, work: str) -> str:
    """dagstermill's context reconstitution for this step, as notebook source."""
    step_context = context.op_execution_context.get_step_execution_context()
    parameters = get_papermill_parameters(step_context, {}, os.path.join(work, "log"), "asset")
    return DagsterTranslator.codify(parameters)
