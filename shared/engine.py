"""The inference engine: gathers concurrent requests into batches and runs them on the device.

Each service request submits its items and awaits the results. A single worker task takes every
item that is waiting (up to `max_batch_size`) and runs the batch function once, under
`torch.inference_mode`, in a thread so the event loop stays free. Requests that arrive while a
batch runs form the next one, so batches grow with load while a lone request never waits
(`max_wait_ms=0`, the default). A positive `max_wait_ms` holds a batch open that long for more
items: bigger batches at low load, for accelerators where a batch costs little more than one item.
`verticals predict` calls the same batch function directly through :meth:`InferenceEngine.run`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import torch

if TYPE_CHECKING:
    from shared.settings import ServeSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class EngineStats:
    """Counters exposed at `/v1/info` to see batching at work."""

    batches: int = 0
    items: int = 0
    busy_s: float = 0.0
    sizes: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, float]:
        mean = self.items / self.batches if self.batches else 0.0
        return {
            "batches": self.batches,
            "items": self.items,
            "mean_batch_size": mean,
            "busy_s": self.busy_s,
        }


class InferenceEngine(Generic[T, R]):
    """Dynamic batching around `batch_fn(list[T]) -> list[R]`.

    Args:
        batch_fn: Predicts a list of items; must return one result per item, in order.
        max_batch_size: Largest batch handed to `batch_fn`.
        max_wait_ms: Longest an item waits for others to join its batch; 0 runs what is waiting.
        warmup_items: Items run once at start so the first real request pays no lazy-init cost.
    """

    def __init__(
        self,
        batch_fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 0.0,
        warmup_items: list[T] | None = None,
    ) -> None:
        self.batch_fn = batch_fn
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.warmup_items = warmup_items or []
        self.stats = EngineStats()
        self.observer: Callable[[int, list[float]], None] | None = None
        """Called with each served batch's size and its items' queue waits (metrics)."""
        self._queue: asyncio.Queue[tuple[T, asyncio.Future, float]] | None = None
        self._worker: asyncio.Task | None = None

    @classmethod
    def from_settings(
        cls,
        batch_fn: Callable[[list[T]], Sequence[R]],
        settings: ServeSettings,
        warmup_items: list[T] | None = None,
    ) -> InferenceEngine[T, R]:
        """An engine with the batching knobs of `settings` (`max_batch_size`, `max_wait_ms`)."""
        return cls(
            batch_fn,
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_wait_ms,
            warmup_items=warmup_items,
        )

    def run(self, items: list[T]) -> list[R]:
        """Predicts synchronously in chunks of `max_batch_size` (the CLI path)."""
        out: list[R] = []
        for start in range(0, len(items), self.max_batch_size):
            out.extend(self._run_batch(items[start : start + self.max_batch_size]))
        return out

    def _run_batch(self, items: list[T]) -> list[R]:
        started = time.perf_counter()
        with torch.inference_mode():
            results = list(self.batch_fn(items))
        if len(results) != len(items):
            raise RuntimeError(
                f"batch function returned {len(results)} results for {len(items)} items"
            )
        self.stats.batches += 1
        self.stats.items += len(items)
        self.stats.busy_s += time.perf_counter() - started
        return results

    def warmup(self) -> None:
        """Runs the warm-up items once (compiles kernels, fills caches)."""
        if self.warmup_items:
            self.run(self.warmup_items)
            self.stats = EngineStats()

    async def start(self) -> None:
        """Starts the batching worker on the running event loop (call from the app lifespan)."""
        await asyncio.to_thread(self.warmup)
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._loop(), name="inference-engine")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None

    async def submit(self, item: T) -> R:
        """Queues one item and waits for its result (exceptions of its batch are re-raised)."""
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: list[T]) -> list[R]:
        """Queues several items; they may share batches with other requests' items."""
        if self._queue is None:  # not started (e.g. used outside a server): run inline
            return await asyncio.to_thread(self.run, list(items))
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        now = time.perf_counter()
        for item, future in zip(items, futures, strict=True):
            self._queue.put_nowait((item, future, now))
        return list(await asyncio.gather(*futures))

    async def _loop(self) -> None:
        assert self._queue is not None
        while True:
            batch = await self._next_batch()
            items = [item for item, _, _ in batch]
            self._observe(batch)
            try:
                results = await asyncio.to_thread(self._run_batch, items)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], error=exc)
                    continue
                # One bad item must not fail the others: run them one by one, so only the
                # request whose item raises gets the error.
                log.warning(
                    "batch of %d failed (%s); retrying its items one by one", len(batch), exc
                )
                await self._run_one_by_one(batch)
                continue
            for (_, future, _), result in zip(batch, results, strict=True):
                _settle(future, result=result)

    def _observe(self, batch: list[tuple[T, asyncio.Future, float]]) -> None:
        if self.observer is not None:
            now = time.perf_counter()
            self.observer(len(batch), [now - queued for _, _, queued in batch])

    async def _next_batch(self) -> list[tuple[T, asyncio.Future, float]]:
        """Waits for an item, then takes what is queued (holding `max_wait_ms` for more)."""
        assert self._queue is not None
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self.max_wait_ms / 1000
        while self.max_wait_ms > 0 and len(batch) < self.max_batch_size:
            timeout = deadline - time.perf_counter()
            if timeout <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), timeout))
            except TimeoutError:
                break
        while len(batch) < self.max_batch_size and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _run_one_by_one(self, batch: list[tuple[T, asyncio.Future, float]]) -> None:
        for item, future, _ in batch:
            try:
                result = (await asyncio.to_thread(self._run_batch, [item]))[0]
            except Exception as exc:
                _settle(future, error=exc)
            else:
                _settle(future, result=result)


def _settle(future: asyncio.Future, result: Any = None, error: Exception | None = None) -> None:
    """Completes a waiting request's future, unless the request already went away."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
