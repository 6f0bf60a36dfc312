"""``map_concurrent``: run an async function over many items, a bounded number at a time.

The guide's p-limit pattern as one call: items are taken from the source ``batch_size`` at a time
(an iterator is never read ahead further than that), each batch runs on at most ``concurrency``
worker tasks (never one task per item), an item's exception is recorded as that item's error
without failing the others, and progress is reported after each batch. ``async for`` over the
result streams the outcomes in input order with memory flat however many items there are;
``await`` collects them into a ``BatchResult``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Sized,
)
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["BatchResult", "ConcurrentMap", "ItemResult", "Progress", "map_concurrent"]

T = TypeVar("T")
R = TypeVar("R")


class _Reporting(Protocol):
    """Where progress goes: a ``ToolContext`` (``context.report_progress``)."""

    def report_progress(self, done: int, total: int | None = None, **details: Any) -> None: ...


_ERRORS_KEPT = 100  # with keep_results=False, only the first failures are kept as examples


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemResult(Generic[T, R]):
    """What one item came to: its ``value``, or the ``error`` it raised."""

    index: int
    item: T
    value: R | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """True when the item succeeded."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """Return the outcome as JSON-ready data (an error as its message, with the item)."""
        if self.error is None:
            return {"index": self.index, "value": self.value}
        error = self.error
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        return {"index": self.index, "item": self.item, "error": message}


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """How far a batch run has got; ``total`` is ``None`` when the source has no length."""

    done: int
    succeeded: int
    failed: int
    total: int | None = None

    @property
    def fraction(self) -> float | None:
        """``done / total``, or ``None`` without a total."""
        return None if not self.total else self.done / self.total


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchResult(Generic[T, R]):
    """Every outcome in input order (unless ``keep_results=False``) and the counts."""

    results: list[ItemResult[T, R]] = field(default_factory=list)
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    max_concurrency: int = 0

    @property
    def values(self) -> list[R | None]:
        """The values of the items that succeeded, in input order."""
        return [r.value for r in self.results if r.error is None]

    @property
    def errors(self) -> list[ItemResult[T, R]]:
        """The outcomes of the items that failed."""
        return [r for r in self.results if r.error is not None]

    def to_dict(self) -> dict[str, Any]:
        """The guide's summary: counts and each outcome, ready to return from ``execute``."""
        return {
            "processed_count": self.processed,
            "success_count": self.succeeded,
            "error_count": self.failed,
            "results": [r.to_dict() for r in self.results],
        }


class ConcurrentMap(Generic[T, R]):
    """A pending ``map_concurrent`` run: ``async for`` streams it, ``await`` collects it."""

    def __init__(
        self,
        items: Iterable[T] | AsyncIterable[T],
        fn: Callable[[T], Awaitable[R]],
        *,
        concurrency: int,
        batch_size: int,
        on_progress: Callable[[Progress], Any] | None,
        context: _Reporting | None,
        keep_results: bool,
    ) -> None:
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be at least 1 (got {concurrency!r})")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be at least 1 (got {batch_size!r})")
        self._items = items
        self._fn = fn
        self.concurrency = concurrency
        self.batch_size = batch_size
        self._on_progress = on_progress
        self._context = context
        self._keep = keep_results
        self.total = len(items) if isinstance(items, Sized) else None
        self.running = 0
        self.max_running = 0
        self.succeeded = 0
        self.failed = 0

    def __await__(self) -> Generator[Any, None, BatchResult[T, R]]:
        return self.collect().__await__()

    async def collect(self) -> BatchResult[T, R]:
        """Run every item and return the ``BatchResult``."""
        kept: list[ItemResult[T, R]] = []
        async for outcome in self:
            if self._keep or (outcome.error is not None and len(kept) < _ERRORS_KEPT):
                kept.append(outcome)
        return BatchResult(
            results=kept,
            processed=self.succeeded + self.failed,
            succeeded=self.succeeded,
            failed=self.failed,
            max_concurrency=self.max_running,
        )

    async def __aiter__(self) -> AsyncIterator[ItemResult[T, R]]:
        source = _aiter(self._items)
        index = 0
        while True:
            batch: list[T] = []
            async for item in source:
                batch.append(item)
                if len(batch) == self.batch_size:
                    break
            if not batch:
                return
            outcomes = await self._run_batch(batch, index)
            index += len(batch)
            for outcome in outcomes:
                yield outcome
            del outcomes, batch
            await self._report()

    async def _run_batch(self, batch: list[T], first: int) -> list[ItemResult[T, R]]:
        outcomes: list[ItemResult[T, R] | None] = [None] * len(batch)
        cursor = 0

        async def worker() -> None:
            nonlocal cursor
            while cursor < len(batch):
                i = cursor
                cursor += 1
                item = batch[i]
                self.running += 1
                if self.running > self.max_running:
                    self.max_running = self.running
                try:
                    value = await self._fn(item)
                except Exception as exc:
                    self.failed += 1
                    outcomes[i] = ItemResult(index=first + i, item=item, error=exc)
                else:
                    self.succeeded += 1
                    outcomes[i] = ItemResult(index=first + i, item=item, value=value)
                finally:
                    self.running -= 1

        workers = min(self.concurrency, len(batch))
        if workers == 1:
            await worker()  # no task needed for one at a time
        else:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        return [o for o in outcomes if o is not None]

    async def _report(self) -> None:
        progress = Progress(
            done=self.succeeded + self.failed,
            succeeded=self.succeeded,
            failed=self.failed,
            total=self.total,
        )
        if self._context is not None:
            self._context.report_progress(progress.done, progress.total, failed=progress.failed)
        if self._on_progress is not None:
            outcome = self._on_progress(progress)
            if inspect.isawaitable(outcome):
                await outcome


async def _aiter(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def map_concurrent(
    items: Iterable[T] | AsyncIterable[T],
    fn: Callable[[T], Awaitable[R]],
    *,
    concurrency: int = 5,
    batch_size: int = 10,
    on_progress: Callable[[Progress], Any] | None = None,
    context: _Reporting | None = None,
    keep_results: bool = True,
) -> ConcurrentMap[T, R]:
    """Apply the async ``fn`` to each item, at most ``concurrency`` at a time, batch by batch.

    ``await map_concurrent(...)`` returns a ``BatchResult`` (``processed``, ``succeeded``,
    ``failed``, ``results`` in input order, ``to_dict()`` for the guide's summary);
    ``async for outcome in map_concurrent(...)`` yields each ``ItemResult`` instead and keeps
    memory flat for any number of items (so does ``keep_results=False``, which keeps only counts
    and the first failures). An item's ``Exception`` becomes its ``error``; cancellation (the
    execution's deadline) still stops the whole run. After each batch ``on_progress(Progress)``
    is called (sync or async) and, when given, ``context.report_progress(done, total)``.
    """
    return ConcurrentMap(
        items,
        fn,
        concurrency=concurrency,
        batch_size=batch_size,
        on_progress=on_progress,
        context=context,
        keep_results=keep_results,
    )
