"""The servicer's synchronous methods as grpc.aio handlers: the event loop receives each request and sends
each answer; the method runs in the handler threads, one answer at a time, and a call that ends early (the
client gone, the deadline passed, the server stopping) stops its method cleanly.

grpc.aio's own bridge for synchronous generators hands each answer over through a queue of one and waits for
the loop forever: a call cancelled mid-stream left its handler thread stuck (with it, the test of 40 such
calls never ended). Here a handler thread only ever waits for its own work.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import grpc

_DONE = object()


class Aborted(Exception):
    """``HandlerContext.abort``: ends the method; the handler answers with this status."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code, self.details = code, details


class HandlerContext:
    """What a method in a handler thread may ask of its call (read in the event loop when the call began)."""

    def __init__(self, context: grpc.aio.ServicerContext):
        self._auth = context.auth_context()
        remaining = context.time_remaining()
        self._ends = None if remaining is None else time.monotonic() + remaining

    def auth_context(self) -> dict:
        return self._auth

    def time_remaining(self) -> float | None:
        """Seconds left before the client's deadline; None when it set none."""
        return None if self._ends is None else max(self._ends - time.monotonic(), 0.0)

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


def unary(method: Callable, threads: ThreadPoolExecutor) -> Callable:
    """``method(request, context)`` (one answer) as a grpc.aio handler."""
    async def handle(request, context: grpc.aio.ServicerContext):
        try:
            return await asyncio.wrap_future(threads.submit(method, request, HandlerContext(context)))
        except Aborted as aborted:
            await context.abort(aborted.code, aborted.details)

    return handle


def streaming(method: Callable[..., Iterator], threads: ThreadPoolExecutor) -> Callable:
    """``method(request, context)`` (a generator of answers) as a grpc.aio handler: each next answer made in
    a handler thread; when the call ends early, the generator is closed in one once its step is over."""
    async def handle(request, context: grpc.aio.ServicerContext):
        answers = method(request, HandlerContext(context))
        step: Future | None = None
        try:
            while True:
                step = threads.submit(next, answers, _DONE)
                answer = await asyncio.wrap_future(step)
                if answer is _DONE:
                    return
                yield answer
        except Aborted as aborted:
            await context.abort(aborted.code, aborted.details)
        finally:
            _close_after(step, answers, threads)

    return handle


def _close_after(step: Future | None, answers: Iterator, threads: ThreadPoolExecutor) -> None:
    """Close ``answers`` (its ``finally`` clauses run) in a handler thread, after ``step`` if it is running."""
    def close(_: object = None) -> None:
        with contextlib.suppress(RuntimeError):  # the threads stopped with the server: nothing left to close
            threads.submit(answers.close)

    if step is None or step.cancel() or step.done():
        close()
    else:
        step.add_done_callback(close)
