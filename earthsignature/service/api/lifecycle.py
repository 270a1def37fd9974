"""The Database service as one unit to start and stop: the gRPC server and its HTTP app, in each of
``api.processes`` processes.

``serving(...)`` is what ``earthsignature serve`` runs (and the demo, through that command): both
servers up on entry, the gateway shut and in-flight calls finished on exit.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from earthsignature.core.layout import CertificateFolder
from earthsignature.core.settings import ApiLimits, ApiSettings
from earthsignature.service.api.allocator import keep_freed_memory
from earthsignature.service.api.auth import TlsFiles
from earthsignature.service.api.http_server import HttpGateway, start_gateway
from earthsignature.service.api.server import ApiServer, build_server
from earthsignature.service.catalog.store_check import check_store

log = logging.getLogger(__name__)
STARTUP_S = 120.0  # the most a server process may take to start serving


class ServeError(ValueError):
    """The service cannot start: its settings (no server certificate, several processes on port 0), or one of
    its server processes failed to."""


@dataclass
class RunningApi:
    grpc: ApiServer
    gateway: HttpGateway | None

    @property
    def http_address(self) -> tuple[str, int] | None:
        return (self.gateway.host, self.gateway.port) if self.gateway else None


def preflight(api: object, insecure: bool) -> TlsFiles | None:
    """Check the settings before anything starts; the server's TLS files (None in insecure mode)."""
    if int(api.processes) > 1 and (api.address.rsplit(":", 1)[-1] == "0" or api.http_port == 0):
        raise ServeError("api.processes > 1 needs fixed ports in api.address and api.http_port")
    if insecure:
        return None
    tls = TlsFiles.from_folder(CertificateFolder(Path(api.certs_dir)))
    if not tls.server_cert.exists():
        raise ServeError(f"no server certificate in {api.certs_dir}: run `earthsignature certs init` "
                         "(or --insecure for local development)")
    return tls


def public_url(api: object, insecure: bool) -> str | None:
    """Where pilots reach the HTTP app: ``api.public_url``, else this server's own host and HTTP port."""
    if getattr(api, "public_url", None):
        return str(api.public_url)
    if not api.http_port:
        return None
    host = api.address.rsplit(":", 1)[0]
    return f"{'http' if insecure else 'https'}://{host}:{int(api.http_port)}"


@contextmanager
def serving(database_url: str, api: object, insecure: bool = False, grace_s: float = 10.0,
            first: bool = True) -> Iterator[RunningApi]:
    """Run the service described by a config's ``api`` section against ``database_url``; with
    ``api.processes`` > 1 the extra processes start too, each with the gRPC server and the HTTP app on the
    shared ports, and all of them serve on entry. ``first``: this process migrates and repairs the store at
    start (the extra ones do not)."""
    tls = preflight(api, insecure)
    keep_freed_memory()  # each server process: answers reuse the memory of the ones before
    limits = api.limits if isinstance(api.limits, ApiLimits) else ApiLimits(**api.limits)
    processes = int(api.processes)
    server = build_server(database_url, api.store_url, api.address, tls, insecure, limits, api.workers,
                          migrate=first, share_port=processes > 1, public_url=public_url(api, insecure),
                          store_endpoint=api.store_endpoint)
    gateway, extra, stop = None, [], None
    try:
        if first and api.store_check_at_start:
            report = check_store(server.catalog, server.core.store, repair=True,
                                 min_age_s=float(api.store_check_min_age_s))
            log.info("raster store at start: %s", report.summary())
        if api.http_port:  # in every process: HTTP scales with processes as gRPC does
            host = api.address.rsplit(":", 1)[0]
            gateway = start_gateway(server.core, (host, int(api.http_port)), tls, share_port=processes > 1)
        if first:
            extra, stop = _start_extra_processes(database_url, api, insecure, processes - 1)
        yield RunningApi(server, gateway)
    finally:
        if stop is not None:
            stop.set()
            for process in extra:
                process.join(grace_s + 5)
        if gateway:
            gateway.stop()
        server.stop(grace=grace_s)


def _start_extra_processes(database_url: str, api: object, insecure: bool, count: int):
    """``count`` more server processes, each serving when this returns (a process that fails to start stops
    the others: ``ServeError``)."""
    if count < 1:
        return [], None
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited gRPC threads
    stop = context.Event()
    settings = OmegaConf.to_object(api) if OmegaConf.is_config(api) else api
    started = [context.Event() for _ in range(count)]
    processes = [context.Process(target=_extra_process, args=(database_url, settings, insecure, stop, ready),
                                 name=f"earthsignature-api-{k + 2}", daemon=True) for k, ready in enumerate(started)]
    for process in processes:
        process.start()
    try:
        for process, ready in zip(processes, started, strict=True):
            _wait_serving(process, ready)
    except BaseException:
        stop.set()
        for process in processes:
            process.join(STARTUP_S)
        raise
    return processes, stop


def _wait_serving(process, ready) -> None:
    """Until ``process`` serves: its imports, its database pool and its ports take seconds, and until then the
    kernel gives none of the shared ports' connections to it."""
    deadline = time.monotonic() + STARTUP_S
    while not ready.wait(0.2):
        if not process.is_alive():
            raise ServeError(f"server process {process.name} exited while starting (exit code "
                             f"{process.exitcode}); its error is in the log above")
        if time.monotonic() > deadline:
            raise ServeError(f"server process {process.name} did not start within {STARTUP_S:.0f} s")


def _extra_process(database_url: str, api: ApiSettings, insecure: bool, stop, ready) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the first process, which stops the others
    with serving(database_url, api, insecure, first=False):
        ready.set()
        stop.wait()
