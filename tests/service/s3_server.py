"""An S3-compatible object store on 127.0.0.1 for the tests: moto's server mode (what s3fs tests against), in a
process of its own, with the credentials the service's store reads (fsspec and GDAL both) in the environment.

moto stores what it is sent and answers S3's calls (listing, ranges, multipart uploads) but checks no
signature: a pre-signed URL opens there whatever it carries. What the tests can check is that the service
hands out the store's own pre-signed URLs (SigV4, the link lifetime) and that tools open them."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from earthsignature.embedded.ports import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "earthsignature-test", "AWS_SECRET_ACCESS_KEY": "not-a-secret",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:<port>
    bucket: str

    def url(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])


@contextmanager
def s3_server(bucket: str = "maps", start_timeout_s: float = 30.0) -> Iterator[S3Server]:
    """moto's S3 server with ``bucket`` made, its credentials in ``os.environ`` while it runs."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port, process, start_timeout_s)
        with pytest.MonkeyPatch.context() as patch:
            for name, value in CREDENTIALS.items():
                patch.setenv(name, value)
            server = S3Server(f"http://127.0.0.1:{port}", bucket)
            import s3fs

            s3fs.S3FileSystem(client_kwargs={"endpoint_url": server.endpoint}).mkdir(bucket)
            yield server
    finally:
        process.terminate()
        process.wait(10)


def _wait_for(port: int, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto's S3 server ended at start (exit {process.returncode})")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"moto's S3 server did not listen on 127.0.0.1:{port} within {timeout_s} s")
