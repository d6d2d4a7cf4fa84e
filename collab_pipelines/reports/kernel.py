"""One Jupyter kernel kept for many notebooks: a range of partitions pays the start once.

dagstermill starts a kernel per execution (about 1 to 1.5 s, plus every notebook's imports).
A `KernelSession` keeps one for a whole step; each notebook after the first starts with
`%reset -f` (injection.prepare), so no variable leaks from one to the next.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Self

import nbformat
import papermill
from papermill.engines import papermill_engines
from papermill.utils import merge_kwargs, remove_args

# dagstermill's engine is the one piece that runs its teardown cell, and it is private: its
# public API (define_dagstermill_asset) owns its kernel, and we hand it a kept one.
from collab_pipelines.reports.dagstermill_internals import DagstermillEngine, DagstermillNotebookClient
from collab_pipelines.reports.rendering import KERNEL_NAME, papermill_options

_KERNEL_START_RETRIES = 3

log = logging.getLogger(__name__)


class KernelSession:
    """One Jupyter kernel reused for many notebooks, started on first use.

    Not shared between threads. A kernel that died is replaced before the next notebook.
    """

    def __init__(self, kernel_name: str = KERNEL_NAME):
        self.kernel_name = kernel_name
        self.km = None
        self.executions = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def alive(self) -> bool:
        if self.km is None or not self.km.has_kernel:
            return False
        from nbclient.util import run_sync

        return bool(run_sync(self.km.is_alive)())

    def execute(self, nb: nbformat.NotebookNode, output_path: Path) -> nbformat.NotebookNode:
        """Run `nb`; on success return it executed, on failure raise PapermillExecutionError
        after papermill has written the failed notebook to `output_path`."""
        from jupyter_client.manager import AsyncKernelManager

        papermill_engines.register(WarmKernelEngine.name, WarmKernelEngine)
        for attempt in range(_KERNEL_START_RETRIES):
            fresh = not self.alive()
            if fresh:
                self.close()
                self.km = AsyncKernelManager(kernel_name=self.kernel_name)
            try:
                executed = papermill.execute_notebook(
                    nb,
                    str(output_path),
                    engine_name=WarmKernelEngine.name,
                    km=self.km,
                    **papermill_options(self.kernel_name),
                )
                self.executions += 1
                return executed
            except RuntimeError as error:
                # Parallel kernels can pick the same ZMQ port; the kernel then dies at once.
                retry = fresh and "Kernel died before replying" in str(error)
                if retry and attempt + 1 < _KERNEL_START_RETRIES:
                    log.warning("kernel start failed (%s); retrying", error)
                    self.close()
                    continue
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.km is not None and self.km.has_kernel:
            from nbclient.util import run_sync

            try:
                run_sync(self.km.shutdown_kernel)(now=True)
            except RuntimeError as error:
                log.warning("kernel shutdown: %s", error)
        self.km = None


class WarmKernelEngine(DagstermillEngine):
    """dagstermill's engine (it runs dagstermill's teardown cell), given a kernel to keep."""

    name = "collab_warm_kernel"

    @classmethod
    def execute_managed_notebook(
        cls,
        nb_man,
        kernel_name,
        log_output=False,
        stdout_file=None,
        stderr_file=None,
        start_timeout=120,
        execution_timeout=None,
        **kwargs,
    ):
        km = kwargs.pop("km")
        safe_kwargs = remove_args(["timeout", "startup_timeout", "input_path"], **kwargs)
        final_kwargs = merge_kwargs(
            safe_kwargs,
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logging.getLogger("papermill"),
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
        )
        client = DagstermillNotebookClient(nb_man, km=km, **final_kwargs)
        try:
            # A client that does not own its kernel manager leaves the kernel running.
            return client.execute()
        finally:
            if client.kc is not None:
                client.kc.stop_channels()
                client.kc = None
