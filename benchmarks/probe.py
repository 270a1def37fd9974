"""A pilot asking while a benchmark attacks the server: one gRPC ListSegmentation and one STAC search (HTTPS)
in turn, every ``interval_s``, each timed; what a real pilot would have waited during the attack."""

from __future__ import annotations

import ssl
import statistics
import threading
import time
import urllib.request


class Probe:
    def __init__(self, grpc_client_factory, stac_root: str | None, tls: tuple[str, str, str] | None,
                 interval_s: float = 0.1):
        """``tls``: (CA, certificate, key) files of the pilot for HTTPS; ``stac_root`` None: gRPC only."""
        self.grpc_client_factory, self.stac_root, self.interval_s = grpc_client_factory, stac_root, interval_s
        self.context = None
        if tls is not None:
            self.context = ssl.create_default_context(cafile=tls[0])
            self.context.load_cert_chain(tls[1], tls[2])
        self.timings: dict[str, list[float]] = {"grpc": [], "http": []}
        self.failures: dict[str, int] = {"grpc": 0, "http": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pilot-probe", daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(120)

    def _run(self) -> None:
        with self.grpc_client_factory() as client:
            while not self._stop.is_set():
                self._timed("grpc", lambda: list(client.list(n_results=2, max_pixels=64)))
                if self.stac_root:
                    self._timed("http", self._stac_search)
                self._stop.wait(self.interval_s)

    def _stac_search(self) -> None:
        with urllib.request.urlopen(f"{self.stac_root}/stac/search?limit=2", context=self.context,
                                    timeout=60) as response:
            response.read()

    def _timed(self, kind: str, call) -> None:
        started = time.perf_counter()
        try:
            call()
        except Exception:  # a refused or failed probe counts apart: the pilot was not served
            self.failures[kind] += 1
            return
        self.timings[kind].append(time.perf_counter() - started)

    def summary(self) -> dict[str, dict[str, float]]:
        result = {}
        for kind, times in self.timings.items():
            if not times and not self.failures[kind]:
                continue
            ordered = sorted(times)
            result[kind] = {"probes": len(times), "failed": self.failures[kind],
                            "p50_ms": 1000 * statistics.median(ordered) if ordered else float("nan"),
                            "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
                            if ordered else float("nan"),
                            "max_ms": 1000 * ordered[-1] if ordered else float("nan")}
        return result
