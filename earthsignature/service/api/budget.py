"""A request's time budget, checked between the steps of its work (each catalog statement is bounded by
PostgreSQL's statement_timeout on its own), and the work slots its CPU-heavy steps take turns in."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import CancelledError, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

from earthsignature.service.api.errors import DeadlineExceeded, Unavailable

T = TypeVar("T")


@dataclass(frozen=True)
class Deadline:
    budget_s: float
    ends: float  # time.monotonic()

    @classmethod
    def within(cls, budget_s: float, client_remaining_s: float | None = None) -> Deadline:
        """The server's budget, or the client's own deadline when it is sooner."""
        if client_remaining_s is not None:
            budget_s = min(budget_s, max(client_remaining_s, 0.0))
        return cls(budget_s, time.monotonic() + budget_s)

    def check(self, advice: str) -> None:
        """``DeadlineExceeded`` once the budget is spent; ``advice`` says what to ask instead."""
        if time.monotonic() > self.ends:
            raise self.exceeded(advice)

    def exceeded(self, detail: str) -> DeadlineExceeded:
        """The error of a request over this budget; ``detail`` says where it was or what to ask instead."""
        return DeadlineExceeded(f"the request ran over its {self.budget_s:g} s budget "
                                f"(api.limits.request_deadline_s) {detail}")


class WorkSlots:
    """A map query's CPU-heavy steps (the catalog search, each answer's window reads and its encoding) and a
    STAC search's (the catalog search, the items, their rendering) run on ``count`` threads of their own, in
    turn; the gRPC and HTTP threads hand them over and wait. Few threads at
    work means little contention for the interpreter lock, and always the same ones keeps their caches (GDAL's,
    PROJ's, the allocator's) warm: handed to whichever of 16 gRPC threads came next, an area query cost 51 ms
    of server CPU at 32 clients instead of 45 (measured under Benchmarks). Sending, which may wait on a slow
    reader, stays outside the slots."""

    def __init__(self, count: int):
        if count < 1:
            raise ValueError(f"work slots must be at least 1, got {count}")
        self._threads = ThreadPoolExecutor(count, thread_name_prefix="work-slot")

    def run(self, deadline: Deadline, advice: str, work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` in a slot, its result or its exception; ``DeadlineExceeded`` if it has not begun by
        the request's deadline (begun, it ends by its own deadline checks)."""
        turn = self._threads.submit(work, *args)
        try:
            return turn.result(timeout=max(deadline.ends - time.monotonic(), 0.0))
        except FutureTimeout:
            if turn.cancel():  # still waiting for a slot: it never runs
                raise deadline.exceeded(f"waiting for the server {advice}") from None
            return turn.result()
        except CancelledError:
            raise Unavailable("the server is stopping: send the request again") from None

    def close(self) -> None:
        """Let the work in the slots end; what still waits never begins (the server is stopping)."""
        self._threads.shutdown(wait=False, cancel_futures=True)
