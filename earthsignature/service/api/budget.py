"""A request's time budget, checked between the steps of its work (each catalog statement is bounded by
PostgreSQL's statement_timeout on its own)."""

from __future__ import annotations

import time
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
            raise DeadlineExceeded(f"the request ran over its {self.budget_s:g} s budget "
                                   f"(api.limits.request_deadline_s) {advice}")
