"""`earthsignature serve` as an operator runs it: a separate process, several server processes on one
port, the store repaired at start, a clean stop on SIGTERM."""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from earthsignature.client import EarthSignatureClient
from earthsignature.core.layout import CertificateFolder
from earthsignature.embedded.ports import free_port
from earthsignature.samples.requests import product_request
from earthsignature.service.api.auth import init_certificates
from earthsignature.service.api.lifecycle import ServeError, _wait_serving

pytestmark = pytest.mark.postgis


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _listening(port: int) -> set[int]:
    """The processes holding a listening TCP socket on ``port`` (from /proc: socket inodes of each process)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    holders = set()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            holders.add(int(fd.parent.parent.name))
    return holders


def _wait_for_line(server: subprocess.Popen, text: str, deadline: float) -> None:
    """Read the server's output until a line holds ``text``."""
    while time.monotonic() < deadline:
        if select.select([server.stdout], [], [], 0.5)[0]:
            line = server.stdout.readline().decode(errors="replace")
            assert line or server.poll() is None, "the server exited"
            if text in line:
                return
    raise AssertionError(f"the server did not print {text!r}")


def _exit_at_once() -> None:
    sys.exit(3)


def test_a_server_process_that_fails_to_start_is_named() -> None:
    process = multiprocessing.get_context("spawn").Process(target=_exit_at_once, name="earthsignature-api-2")
    process.start()
    with pytest.raises(ServeError, match=r"earthsignature-api-2 exited while starting \(exit code 3\)"):
        _wait_serving(process, multiprocessing.get_context("spawn").Event())


def test_two_server_processes_share_the_port_and_stop_together(postgis_db, tmp_path) -> None:
    certs = CertificateFolder(tmp_path / "certs")
    init_certificates(certs, ("server", "monitor", "pilot"))
    orphan = tmp_path / "store" / "S2X_killed" / "m" / "1" / "abc" / "classes.tif"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"left by a killed ingestion")
    address, http_port = f"127.0.0.1:{free_port()}", free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "earthsignature.cli", "serve", f"db.url={postgis_db}", f"api.address={address}",
         f"api.http_port={http_port}", f"api.store_url={tmp_path / 'store'}", f"api.certs_dir={certs.path}",
         "api.processes=2", "api.store_check_min_age_s=0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    monitor, pilot = certs.identity("monitor"), certs.identity("pilot")
    try:
        deadline = time.monotonic() + 60
        _wait_for_line(server, "gRPC on", deadline)
        # when the command says it serves, both processes do, on both ports: none is still starting
        grpc_port = int(address.rsplit(":", 1)[1])
        assert len(_listening(grpc_port)) == 2 and len(_listening(http_port)) == 2
        while True:
            try:
                with EarthSignatureClient(address, ca=certs.ca_cert, cert=monitor.cert, key=monitor.key,
                                          timeout_s=5) as client:
                    client.create(product_request(1))
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.3)
        assert not orphan.exists()  # the store was repaired at start
        while len(_children(server.pid)) < 2 and time.monotonic() < deadline:  # the spawned server + its tracker
            time.sleep(0.2)
        answers = []
        for _ in range(12):  # separate connections, spread by the kernel over both processes
            with EarthSignatureClient(address, ca=certs.ca_cert, cert=pilot.cert, key=pilot.key,
                                      timeout_s=30) as client:
                answers.append(len(list(client.list())))
        assert answers == [1] * 12
        children = _children(server.pid)
        assert children
        # the HTTP app runs in both processes, on one port, like gRPC
        while len(_listening(http_port)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_listening(http_port) & {server.pid, *children}) == 2
        context = ssl.create_default_context(cafile=str(certs.ca_cert))
        context.load_cert_chain(str(pilot.cert), str(pilot.key))
        for _ in range(6):
            with urllib.request.urlopen(f"https://127.0.0.1:{http_port}/healthz", context=context) as response:
                assert response.status == 200
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0].decode()
    assert server.returncode == 0 and "stopped" in output
    deadline = time.monotonic() + 15  # multiprocessing's resource tracker leaves just after its parent
    while [pid for pid in children if Path(f"/proc/{pid}").exists()] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]  # no process left behind
