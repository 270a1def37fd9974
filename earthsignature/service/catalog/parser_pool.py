"""Client filters parsed in worker processes that are killed when a parse runs over its budget.

A parser of client text can be slow in ways no cap on length or nesting predicts (cql2 backtracks
exponentially on some nestings, holding the interpreter lock): run in the server's process, one request
would stop every other, gRPC pilots included. Here each parse runs in a ``parse_worker`` process with a
time budget, a memory cap and a CPU-time limit; the caller waits without holding the interpreter lock, and a
worker over its time is killed and replaced. Workers start on first use and are reused.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import select
import subprocess
import sys
import threading
import time
from typing import Any

log = logging.getLogger(__name__)
STARTUP_S = 30.0  # a fresh interpreter importing cql2, on a loaded machine


class ParseRefused(ValueError):
    """The text cannot be parsed, or not within the budget; the message says which."""


class ParserPool:
    def __init__(self, processes: int = 2, timeout_s: float = 1.0, memory_mb: int = 512):
        self.processes, self.timeout_s, self.memory_mb = processes, timeout_s, memory_mb
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._started = 0
        self._lock = threading.Lock()
        self._closed = False

    def parse_cql2(self, expression: str | dict[str, Any], language: str | None) -> dict[str, Any]:
        """CQL2 text or JSON -> CQL2 JSON, or ``ParseRefused`` (invalid, or over the time or memory budget)."""
        reply = self._run({"expression": expression, "language": language})
        if "error" in reply:
            raise ParseRefused(reply["error"])
        return reply["ok"]

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().kill()
            except queue.Empty:
                return

    # -- one job -------------------------------------------------------------------------------------

    def _run(self, request: dict[str, Any]) -> dict[str, Any]:
        worker = self._take()
        try:
            reply = worker.ask(json.dumps(request, separators=(",", ":")), self.timeout_s)
        except _WorkerLost as lost:
            worker.kill()
            self._replace()
            log.warning("a filter parse was stopped: %s", lost)
            raise ParseRefused(f"the filter could not be parsed within its budget ({lost}): simplify it") from None
        if self._closed:  # the pool closed during this parse: nobody will take the worker again
            worker.kill()
        else:
            self._idle.put(worker)
        return reply

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise ParseRefused("the server is stopping")
            if self._idle.empty() and self._started < self.processes:
                self._started += 1
                return self._spawn()
        try:  # every worker busy: wait for one, but not longer than a parse may take
            return self._idle.get(timeout=self.timeout_s * 2)
        except queue.Empty:
            raise ParseRefused("every filter parser is busy: retry in a moment") from None

    def _replace(self) -> None:
        with self._lock:
            if not self._closed:
                self._idle.put(self._spawn())
            else:
                self._started -= 1

    def _spawn(self) -> _Worker:
        return _Worker(self.memory_mb, self.timeout_s)


class _WorkerLost(Exception):
    pass


class _Worker:
    def __init__(self, memory_mb: int, timeout_s: float):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "earthsignature.service.catalog.parse_worker", str(memory_mb), str(timeout_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, close_fds=True)
        self._pending = b""
        try:  # the interpreter's start is not part of any parse's budget
            self._read_line(STARTUP_S, "to start")
        except _WorkerLost:
            self.kill()
            raise ParseRefused("no filter parser could be started") from None

    def ask(self, line: str, timeout_s: float) -> dict[str, Any]:
        try:
            self.process.stdin.write(line.encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise _WorkerLost(f"the parser process had stopped: {error}") from None
        try:
            return json.loads(self._read_line(timeout_s, f"over {timeout_s:g} s"))
        except (ValueError, RecursionError):
            raise _WorkerLost("its answer could not be read back") from None

    def _read_line(self, timeout_s: float, late: str) -> bytes:
        deadline = time.monotonic() + timeout_s
        descriptor = self.process.stdout.fileno()
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([descriptor], [], [], left)[0]:
                raise _WorkerLost(late)
            chunk = os.read(descriptor, 1 << 16)
            if not chunk:
                raise _WorkerLost("the parser process ended (out of memory or CPU time)")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()
