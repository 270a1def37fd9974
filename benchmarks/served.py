"""`earthsignature serve` for the benchmarks that attack it: a scratch catalog with the project's certificates,
and the server in its own process, restartable."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc

from earthsignature.client import EarthSignatureClient
from earthsignature.core.layout import CertificateFolder
from earthsignature.embedded.ports import free_port
from earthsignature.embedded.postgres import PostgresCluster
from earthsignature.service.api.auth import init_certificates
from earthsignature.service.catalog.schema import upgrade


def clients(certs: CertificateFolder, address: str):
    """``factory(who, timeout_s)``: a client of the server as ``internal`` (the monitor's certificate) or
    ``pilot``."""
    identities = {"internal": certs.identity("monitor"), "pilot": certs.identity("pilot")}

    def factory(who: str, timeout_s: float = 60) -> EarthSignatureClient:
        identity = identities[who]
        return EarthSignatureClient(address, ca=certs.ca_cert, cert=identity.cert, key=identity.key,
                                    timeout_s=timeout_s)

    return factory


def prepare(cluster: PostgresCluster, work: Path) -> tuple[str, CertificateFolder, str, int]:
    """A migrated catalog, certificates (server, monitor, pilot) and free ports: (url, certificates, gRPC
    address, HTTP port)."""
    url = cluster.up("fuzz")
    upgrade(url)
    certs = CertificateFolder(work / "certs")
    init_certificates(certs, ("server", "monitor", "pilot"))
    return url, certs, f"127.0.0.1:{free_port()}", free_port()


class Server:
    """`earthsignature serve` in its own process, restartable."""

    def __init__(self, overrides: list[str], log: Path):
        self.overrides, self.log, self.process = overrides, log, None

    def start(self, client_factory) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "earthsignature.cli", "serve", *self.overrides],
                                        stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with client_factory("pilot", timeout_s=2) as client:
                    list(client.list(n_results=1))
                return
            except grpc.RpcError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not start: see {self.log}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
