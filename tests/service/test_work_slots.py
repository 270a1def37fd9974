"""Work slots: at most ``count`` holders at once; a waiter gives up at its request's deadline with
DEADLINE_EXCEEDED, and a slot is given back when the work in it fails."""

from __future__ import annotations

import threading
import time

import pytest

from earthsignature.service.api.budget import Deadline, WorkSlots
from earthsignature.service.api.errors import DeadlineExceeded


def test_no_more_holders_than_slots() -> None:
    slots, inside, most, lock = WorkSlots(2), [0], [0], threading.Lock()

    def work() -> None:
        with slots.held(Deadline.within(10.0), "to work"):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.02)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 2


def test_a_waiter_gives_up_at_its_deadline() -> None:
    slots, taken, finish = WorkSlots(1), threading.Event(), threading.Event()

    def hold() -> None:
        with slots.held(Deadline.within(10.0), "to work"):
            taken.set()
            finish.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(10)
    started = time.monotonic()
    with (pytest.raises(DeadlineExceeded, match=r"0\.2 s budget .* waiting for the server to read maps"),
          slots.held(Deadline.within(0.2), "to read maps")):
        pass
    assert time.monotonic() - started >= 0.2
    finish.set()
    holder.join()
    with slots.held(Deadline.within(0.2), "to read maps"):  # free again
        pass


def test_a_failure_inside_gives_the_slot_back() -> None:
    slots = WorkSlots(1)
    with pytest.raises(RuntimeError), slots.held(Deadline.within(1.0), "to work"):
        raise RuntimeError("the work failed")
    with slots.held(Deadline.within(0.1), "to work"):
        pass


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WorkSlots(0)
