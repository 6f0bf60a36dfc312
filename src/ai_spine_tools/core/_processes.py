"""The server's process pool: ``await context.to_process(fn, ...)`` and ``executor="process"``.

CPU-bound Python holds the GIL, so threads take turns and an ``async execute`` stalls every other
request; in worker processes it runs on every core while the event loop keeps answering. One pool
per server process (each ``--workers`` process owns its own), ``AI_SPINE_PROCESS_WORKERS`` big (one
per core by default), started on first use and shut down when the tool stops.

Why our own pool rather than ``concurrent.futures.ProcessPoolExecutor`` or ``pebble``: the
executor cannot stop a running call, so a call past its deadline would hold a worker forever.
pebble can, and is as fast (a small call took 170-350 µs with either, 120-250 µs with this pool,
on two shared cores), but it writes every call at once into one pipe that all workers read, so a
call whose deadline passes while it waits there is still picked up by a worker, which pebble
then terminates: a burst of expired calls restarts a worker per call. Here calls wait in the
parent and go to an idle worker over its own pipe: an expired call that waits is dropped, only
the worker running an expired call is terminated and replaced, and the figures (busy, queued,
restarts) are exact. One manager thread does all process work, so the pool serves any loop.

Start method: ``forkserver`` where the platform has it (``spawn`` elsewhere). ``fork`` copies a
process with running threads and an event loop, which can deadlock (Python 3.12+ warns); ``spawn``
starts a fresh interpreter for every worker, so each replacement would import the SDK again;
the fork server is one clean, single-threaded process that forks warm workers in milliseconds.

What travels to a worker and back, and how a tool file's functions are found there:
``_processcalls``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import logging
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from ai_spine_tools.core._processcalls import describe, pack_call, serve, unpack_reply
from ai_spine_tools.exceptions import ServiceUnavailableError, WorkerCrashedError
from ai_spine_tools.observability._metrics import usable_cores

__all__ = [
    "ProcessPool",
    "configure_processes",
    "shared_pool",
    "shutdown_shared_pool",
]

logger = logging.getLogger("ai_spine_tools")
P = ParamSpec("P")
R = TypeVar("R")

_KILL_AFTER_S = 1.0  # a terminated worker that ignores SIGTERM this long is killed


@dataclass(slots=True, kw_only=True, eq=False)
class _Call:
    payload: bytes
    name: str
    future: Future[bytes] = field(default_factory=Future)
    pid: int = 0
    abandoned: bool = False


@dataclass(slots=True, kw_only=True, eq=False)
class _Worker:
    process: Any  # a multiprocessing process of the pool's context
    conn: Any  # the parent's end of its pipe
    call: _Call | None = None
    stop_by: float = 0.0  # when terminating: kill it past this instant

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)


class ProcessPool:
    """Worker processes for CPU-bound calls: ``await pool.run(fn, *args, **kwargs)``.

    Workers start on demand, up to ``max_workers``; calls beyond them wait in order. A call
    whose awaiting task is cancelled (an execution past its deadline) is dropped if it waits,
    and if it runs, its worker is terminated and replaced. A worker that dies fails its call
    with ``WorkerCrashedError`` and is replaced. ``stats()`` gives the figures for ``/metrics``.
    """

    def __init__(self, max_workers: int, *, start_method: str | None = None) -> None:
        import multiprocessing
        import multiprocessing.util  # its exit handler first, so that ours runs before it

        global _exit_hook
        if not _exit_hook:
            _exit_hook = True
            atexit.register(_shutdown_at_exit)

        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1 (got {max_workers})")
        self.max_workers = max_workers
        method = start_method or _start_method()
        self.start_method = method
        self._mp = multiprocessing.get_context(method)
        self._lock = threading.Lock()
        self._queue: deque[_Call] = deque()
        self._workers: list[_Worker] = []
        self._dying: list[_Worker] = []
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = self._mp.Pipe(duplex=False)
        self._woken = False
        self.closed = False
        self.calls = self.restarts = self.crashes = 0
        self._lost = 0  # workers to replace (manager thread only)
        _LIVE.add(self)

    # -- the caller's side -----------------------------------------------------------------

    async def run(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` in a worker and return its result (or raise its error)."""
        result: R = await self.call(fn, args, kwargs, role="context.to_process")
        return result

    async def call(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        *,
        role: str,
    ) -> Any:
        """Run ``fn`` in a worker; ``role`` names the caller in error messages."""
        call = self.submit(fn, args, kwargs, role=role)
        try:
            reply = await asyncio.wrap_future(call.future)
        except asyncio.CancelledError:
            self.abandon(call)
            raise
        return unpack_reply(reply, name=call.name, pid=call.pid)

    def submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any], *, role: str
    ) -> _Call:
        """Queue a call (pickled here, so a mistake raises ``UnpicklableError`` at once)."""
        if inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"{role} runs plain functions in a worker process; {describe(fn)} is async "
                "(await it directly, or make it a plain def)"
            )
        call = _Call(payload=pack_call(fn, args, kwargs, role=role), name=describe(fn))
        with self._lock:
            if self.closed:
                raise ServiceUnavailableError("the process pool is shut down")
            self._queue.append(call)
            self.calls += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._manage, name="ai-spine-process-pool", daemon=True
                )
                self._thread.start()
            self._wake()
        return call

    def abandon(self, call: _Call) -> None:
        """Nobody waits for ``call`` any more: drop it, or stop the worker running it."""
        with self._lock:
            if call.future.cancel():  # still queued (or already dropped from the queue)
                with contextlib.suppress(ValueError):
                    self._queue.remove(call)
                return
            if not call.future.done():
                call.abandoned = True
                self._wake()

    def stats(self) -> dict[str, Any]:
        """Workers alive (``size``) of ``max_size``, busy and idle ones, calls waiting for one
        (``queued``), calls submitted, workers replaced (``restarts``: after a stopped call or
        a crash) and crashes."""
        with self._lock:
            size = len(self._workers)
            busy = sum(1 for worker in self._workers if worker.call is not None)
            return {
                "max_size": self.max_workers,
                "size": size,
                "busy": busy,
                "idle": size - busy,
                "queued": len(self._queue),
                "calls": self.calls,
                "restarts": self.restarts,
                "crashes": self.crashes,
                "start_method": self.start_method,
            }

    def pids(self) -> list[int]:
        """The process ids of the workers alive now."""
        with self._lock:
            return [worker.pid for worker in self._workers]

    def shutdown(self, *, timeout: float = 5.0) -> None:
        """Fail waiting calls, stop every worker (idle ones exit, busy ones are terminated)
        and wait for them, at most ``timeout`` seconds."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            waiting = list(self._queue)
            self._queue.clear()
            thread = self._thread
            self._wake()
        for call in waiting:
            if call.future.set_running_or_notify_cancel():
                call.future.set_exception(ServiceUnavailableError("the process pool shut down"))
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if thread is None or not thread.is_alive():
            self._wake_r.close()
            self._wake_w.close()
        _LIVE.discard(self)

    def _wake(self) -> None:  # under the lock
        if not self._woken:
            self._woken = True
            self._wake_w.send_bytes(b"")

    # -- the manager thread ----------------------------------------------------------------

    def _manage(self) -> None:
        from multiprocessing.connection import wait

        try:
            while True:
                with self._lock:
                    if self.closed:
                        break
                    stop = [w for w in self._workers if w.call is not None and w.call.abandoned]
                    assign = self._assignable()
                for worker in stop:
                    self._terminate(worker)
                for call in assign:
                    self._dispatch(call)
                self._replace_lost()
                self._kill_stragglers()
                busy = {w.conn: w for w in self._workers if w.call is not None}
                ends = {w.process.sentinel: w for w in (*self._workers, *self._dying)}
                timeout = _KILL_AFTER_S / 4 if self._dying else None
                for ready in wait([self._wake_r, *busy, *ends], timeout):
                    if ready is self._wake_r:
                        self._drain_wakeups()
                    elif ready in busy:
                        self._receive(busy[ready])
                    elif ready in ends:
                        self._reap(ends[ready])
        except Exception:
            logger.exception("the process pool's manager failed; the pool is closed")
            raise
        finally:
            with self._lock:
                self.closed = True
                waiting = list(self._queue)
                self._queue.clear()
            for call in waiting:
                if call.future.set_running_or_notify_cancel():
                    call.future.set_exception(ServiceUnavailableError("the process pool closed"))
            self._stop_all()

    def _assignable(self) -> list[_Call]:  # under the lock
        """Take from the queue the calls that an idle worker, or a new one, can run now."""
        room = self.max_workers - sum(1 for w in self._workers if w.call is not None)
        out: list[_Call] = []
        while self._queue and len(out) < room:
            call = self._queue.popleft()
            if call.future.set_running_or_notify_cancel():
                out.append(call)
        return out

    def _dispatch(self, call: _Call) -> None:
        with self._lock:
            if call.abandoned:  # its caller left between the queue and here: send nothing
                call.future.set_exception(CancelledError())
                return
            worker = next((w for w in self._workers if w.call is None), None)
        if worker is None:
            try:
                worker = self._start_worker()
            except Exception as exc:  # out of processes or memory: the call cannot run now
                call.future.set_exception(
                    ServiceUnavailableError(f"could not start a worker process ({exc})")
                )
                return
        with self._lock:
            worker.call, call.pid = call, worker.pid
        # A worker that died meanwhile refuses the payload: _reap fails the call.
        with contextlib.suppress(OSError):
            worker.conn.send_bytes(call.payload)

    def _replace_lost(self) -> None:
        """Start a worker for each one lost (terminated or crashed), so the pool stays warm."""
        lost, self._lost = self._lost, 0
        for _ in range(min(lost, self.max_workers - len(self._workers))):
            try:
                self._start_worker()
            except Exception:  # out of processes or memory: the next call tries, or says so
                logger.exception("could not replace a worker of the process pool")
                return

    def _start_worker(self) -> _Worker:
        ours, theirs = self._mp.Pipe(duplex=True)
        process = self._mp.Process(  # type: ignore[attr-defined]  # every context has it
            target=serve, args=(theirs,), name="ai-spine-process-worker", daemon=False
        )
        process.start()
        theirs.close()
        worker = _Worker(process=process, conn=ours)
        with self._lock:
            self._workers.append(worker)
        return worker

    def _receive(self, worker: _Worker) -> None:
        try:
            reply = worker.conn.recv_bytes()
        except (EOFError, OSError):
            return  # it died: its sentinel is ready too, and _reap fails the call
        with self._lock:
            call, worker.call = worker.call, None
        if call is not None and not call.future.done():
            call.future.set_result(reply)

    def _reap(self, worker: _Worker) -> None:
        worker.process.join(0.1)
        worker.conn.close()
        if worker in self._dying:
            self._dying.remove(worker)
            return
        with self._lock:
            if worker not in self._workers:
                return
            self._workers.remove(worker)
            self.restarts += 1
            self.crashes += 1
            self._lost += 1
            call, worker.call = worker.call, None
        if call is not None and not call.future.done():
            call.future.set_exception(
                WorkerCrashedError(
                    f"the worker process (pid {worker.pid}) running {call.name} died "
                    f"({_exit_reason(worker.process.exitcode)}); a new worker replaces it"
                )
            )

    def _terminate(self, worker: _Worker) -> None:
        """Stop the worker of an abandoned call, unless its answer has just arrived."""
        if worker.conn.poll():
            self._receive(worker)  # finished at the last moment: keep the worker
            if worker.call is None:
                return
        with self._lock:
            self._workers.remove(worker)
            self.restarts += 1
            self._lost += 1
            call, worker.call = worker.call, None
        if call is not None and not call.future.done():
            call.future.set_exception(CancelledError())  # nobody reads it: its caller left
        worker.process.terminate()
        worker.conn.close()
        worker.stop_by = time.monotonic() + _KILL_AFTER_S
        self._dying.append(worker)

    def _kill_stragglers(self) -> None:
        now = time.monotonic()
        for worker in self._dying:
            if now >= worker.stop_by and worker.process.is_alive():
                worker.process.kill()

    def _drain_wakeups(self) -> None:
        with self._lock:
            while self._wake_r.poll():
                self._wake_r.recv_bytes()
            self._woken = False

    def _stop_all(self) -> None:
        """Close every worker: idle ones exit at the end of their pipe, busy ones are
        terminated; wait for each, killing those that outlive the grace."""
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            if worker.call is not None:
                call, worker.call = worker.call, None
                if not call.future.done():
                    call.future.set_exception(
                        ServiceUnavailableError("the process pool shut down during the call")
                    )
                worker.process.terminate()
        for worker in (*workers, *self._dying):
            worker.conn.close()
            worker.process.join(_KILL_AFTER_S)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(_KILL_AFTER_S)
        self._dying.clear()


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _start_method() -> str:
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        # Warm workers: the fork server imports the SDK once, then forks each worker from it.
        multiprocessing.set_forkserver_preload(["__main__", __name__])
        return "forkserver"
    return "spawn"


# -- the server's pool -----------------------------------------------------------------------

_LIVE: weakref.WeakSet[ProcessPool] = weakref.WeakSet()
_shared: ProcessPool | None = None
_configured: int | None = None
_shared_lock = threading.Lock()
_exit_hook = False


def configure_processes(*, workers: int | None) -> None:
    """Size the pool created from now on (the server passes ``AI_SPINE_PROCESS_WORKERS``)."""
    global _configured
    _configured = workers


def shared_pool() -> ProcessPool:
    """This process's pool, created on first use (no worker starts before a call)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.closed:
            from ai_spine_tools._settings import process_workers_from_env
            from ai_spine_tools.outbound._pools import register_pool

            size = _configured or process_workers_from_env() or usable_cores()
            _shared = ProcessPool(size)
            register_pool("processes", _shared)
        return _shared


def shutdown_shared_pool() -> None:
    """Stop this process's pool, if it was started (the next call starts a new one)."""
    global _shared
    with _shared_lock:
        pool, _shared = _shared, None
    if pool is not None:
        from ai_spine_tools.outbound._pools import unregister_pool

        unregister_pool("processes", pool)
        pool.shutdown()


def _shutdown_at_exit() -> None:
    # Workers are not daemons (so they may start processes themselves); multiprocessing's own
    # exit handler would wait for them, forever for one stuck in a call: stop them first.
    for pool in list(_LIVE):
        pool.shutdown(timeout=2.0)
