"""Jupyter kernels kept for many notebooks: a range of partitions pays each start once.

dagstermill starts a kernel per execution (about 1 to 1.5 s, plus every notebook's imports).
A `KernelSession` keeps one for a whole step; each notebook after the first starts with
`%reset -f` (injection.prepare), so no variable leaks from one to the next. `in_kernels` runs
a range's notebooks on a few such kernels at once, each kept by a thread of its own.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Self, TypeVar

import nbformat
import papermill
from papermill.engines import papermill_engines
from papermill.utils import merge_kwargs, remove_args

# dagstermill's engine is the one piece that runs its teardown cell, and it is private: its
# public API (define_dagstermill_asset) owns its kernel, and we hand it a kept one.
from collab_pipelines.reports.dagstermill_internals import DagstermillEngine, DagstermillNotebookClient
from collab_pipelines.reports.rendering import KERNEL_NAME, papermill_options

_KERNEL_START_RETRIES = 3
# How long a stopped step waits for its kernels' threads once it has killed their kernels:
# nbclient notices a dead kernel within a few seconds.
_STOP_JOIN_SECONDS = 30

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)


class KernelSession:
    """One Jupyter kernel reused for many notebooks, started on first use.

    Not shared between threads. A kernel that died is replaced before the next notebook.
    """

    def __init__(self, kernel_name: str = KERNEL_NAME):
        self.kernel_name = kernel_name
        self.km = None
        self.executions = 0
        self.killed = False

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
            if self.killed:
                raise RuntimeError("the kernel was killed: its step is being stopped")
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

    def kill(self) -> None:
        """Kill the kernel's process at once, from any thread: the step is being stopped.

        The thread using the session then sees a dead kernel and closes the session itself; the
        session starts no other.
        """
        self.killed = True
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is not None:
            try:
                process.kill()
            except OSError as error:
                log.warning("kernel kill: %s", error)

    def close(self) -> None:
        if self.km is not None and self.km.has_kernel:
            from nbclient.util import run_sync

            try:
                run_sync(self.km.shutdown_kernel)(now=True)
            except RuntimeError as error:
                log.warning("kernel shutdown: %s", error)
        self.km = None


_FINISHED = object()


def in_kernels(
    items: Sequence[T],
    work: Callable[[KernelSession, T], R],
    kernels: int = 1,
    kernel_name: str = KERNEL_NAME,
) -> Iterator[tuple[T, R]]:
    """`work(session, item)` for every item, on up to `kernels` kept kernels at once.

    Yields `(item, result)` as each finishes, so not in the items' order when `kernels` > 1.
    Each kernel belongs to a thread of its own, which takes the next item when its last is
    done: a KernelSession is never shared. An exception from `work` stops every thread taking
    more and is raised here once the items already started have finished (and been yielded);
    work whose items may fail one by one returns the error as the result instead. A caller
    that stops early (a terminated step) kills every kernel and waits for the threads.
    """
    pending: queue.SimpleQueue = queue.SimpleQueue()
    for item in items:
        pending.put(item)
    finished: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()
    sessions = [KernelSession(kernel_name) for _ in range(max(1, min(kernels, len(items))))]

    def serve(session: KernelSession) -> None:
        try:
            with session:
                while not stop.is_set():
                    try:
                        item = pending.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        finished.put((item, work(session, item), None))
                    except BaseException as error:  # raised again in the caller's thread
                        stop.set()
                        finished.put((item, None, error))
        finally:
            finished.put(_FINISHED)

    threads = [
        threading.Thread(target=serve, args=(session,), name=f"report-kernel-{n}", daemon=True)
        for n, session in enumerate(sessions)
    ]
    for thread in threads:
        thread.start()
    running, failure = len(threads), None
    try:
        while running:
            message = finished.get()
            if message is _FINISHED:
                running -= 1
                continue
            item, result, error = message
            if error is not None:
                failure = failure or error
                continue
            yield item, result
    finally:
        if running:
            stop.set()
            for session in sessions:
                session.kill()
            for thread in threads:
                thread.join(_STOP_JOIN_SECONDS)
    if failure is not None:
        raise failure


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
