"""Work slots: the work runs on ``count`` threads of their own, at most ``count`` pieces at once; a request
whose work has not begun by its deadline is answered DEADLINE_EXCEEDED and its work never runs; begun work
runs to its end; the work's result and its failure reach the caller."""

from __future__ import annotations

import threading
import time

import pytest

from earthsignature.service.api.budget import Deadline, WorkSlots
from earthsignature.service.api.errors import DeadlineExceeded, Unavailable


def test_no_more_at_work_than_slots_always_on_the_same_threads() -> None:
    slots, inside, most, lock, threads_used = WorkSlots(2), [0], [0], threading.Lock(), set()

    def work(number: int) -> int:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            threads_used.add(threading.get_ident())
        time.sleep(0.02)
        with lock:
            inside[0] -= 1
        return number * 10

    results: list[int] = []
    callers = [threading.Thread(target=lambda n=n: results.append(slots.run(Deadline.within(10.0), "to work", work, n)))
               for n in range(12)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert sorted(results) == [n * 10 for n in range(12)]
    assert most[0] == 2
    assert len(threads_used) == 2 and not threads_used & {caller.ident for caller in callers}
    slots.close()


def test_work_not_begun_by_the_deadline_is_refused_and_never_runs() -> None:
    slots, taken, finish, ran = WorkSlots(1), threading.Event(), threading.Event(), []

    def hold() -> None:
        taken.set()
        finish.wait(10)

    holder = threading.Thread(target=lambda: slots.run(Deadline.within(10.0), "to work", hold))
    holder.start()
    taken.wait(10)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"0\.2 s budget .* waiting for the server to read maps"):
        slots.run(Deadline.within(0.2), "to read maps", ran.append, "late")
    assert time.monotonic() - started >= 0.2
    finish.set()
    holder.join()
    assert slots.run(Deadline.within(0.2), "to read maps", lambda: "free again") == "free again"
    assert ran == []
    slots.close()


def test_begun_work_runs_to_its_end_past_the_deadline() -> None:
    slots = WorkSlots(1)
    assert slots.run(Deadline.within(0.05), "to work", lambda: time.sleep(0.2) or "done") == "done"
    slots.close()


def test_a_failure_inside_reaches_the_caller_and_frees_the_slot() -> None:
    slots = WorkSlots(1)

    def fail() -> None:
        raise RuntimeError("the work failed")

    with pytest.raises(RuntimeError, match="the work failed"):
        slots.run(Deadline.within(1.0), "to work", fail)
    assert slots.run(Deadline.within(0.1), "to work", lambda: 7) == 7
    slots.close()


def test_work_waiting_when_the_server_stops_is_unavailable() -> None:
    slots, taken, finish = WorkSlots(1), threading.Event(), threading.Event()
    holder = threading.Thread(target=lambda: slots.run(Deadline.within(10.0), "to work",
                                                       lambda: taken.set() or finish.wait(10)))
    holder.start()
    taken.wait(10)
    outcome: list[BaseException] = []

    def wait_for_a_slot() -> None:
        try:
            slots.run(Deadline.within(10.0), "to work", lambda: None)
        except Unavailable as error:
            outcome.append(error)

    waiter = threading.Thread(target=wait_for_a_slot)
    waiter.start()
    time.sleep(0.1)
    slots.close()
    finish.set()
    waiter.join(10)
    holder.join(10)
    assert len(outcome) == 1 and "stopping" in str(outcome[0])


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WorkSlots(0)
