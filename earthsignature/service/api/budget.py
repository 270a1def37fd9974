"""A request's time budget, checked between the steps of its work (each catalog statement is bounded by
PostgreSQL's statement_timeout on its own)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from earthsignature.service.api.errors import DeadlineExceeded


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
    """At most ``count`` holders at once in one server process: a map query's CPU-heavy steps (the catalog
    search, each answer's window reads and its encoding) run in a few threads while the others wait their
    turn, instead of every gRPC thread contending for the interpreter lock (measured under Benchmarks).
    Sending, which may wait on a slow reader, happens outside a slot."""

    def __init__(self, count: int):
        if count < 1:
            raise ValueError(f"work slots must be at least 1, got {count}")
        self._semaphore = threading.BoundedSemaphore(count)

    @contextmanager
    def held(self, deadline: Deadline, advice: str) -> Iterator[None]:
        """A slot for the block; ``DeadlineExceeded`` if none frees before the request's deadline."""
        if not self._semaphore.acquire(timeout=max(deadline.ends - time.monotonic(), 0.0)):
            raise deadline.exceeded(f"waiting for the server {advice}")
        try:
            yield
        finally:
            self._semaphore.release()
