"""The schema hosts a STAC validator fetches from, offline: an HTTPS proxy on 127.0.0.1 that answers CONNECT
for ``schemas.stacspec.org``, ``geojson.org`` and ``stac-extensions.github.io`` with a certificate of its own
CA and serves each schema by its URL; every other host is refused (and recorded, so a test sees what a
validator tried to reach). Clients find it through the standard variables (``HTTPS_PROXY``, ``NO_PROXY``,
``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``): the validator runs unchanged.

What is served: the STAC core and GeoJSON schemas pystac ships (the published files), and for each extension
the rules its specification states, written as JSON Schema in ``extension_rules`` (no package ships the
published extension schemas, and tests do not reach the internet).
"""

from __future__ import annotations

import json
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from earthsignature.service.api.auth import CertificateAuthority

HOSTS = ("schemas.stacspec.org", "geojson.org", "stac-extensions.github.io")


@dataclass
class Mirror:
    proxy_url: str
    ca_cert: Path
    served: list[str] = field(default_factory=list)  # the schema URLs fetched
    refused: list[str] = field(default_factory=list)  # hosts or URLs it could not answer

    def environment(self, *trusted: Path, direct: str = "127.0.0.1,localhost") -> dict[str, str]:
        """The variables that send a client's schema fetches here, trusting this mirror's CA and ``trusted``
        (a server's CA) and reaching ``direct`` hosts without the proxy."""
        bundle = self.ca_cert.with_name("bundle.pem")
        bundle.write_bytes(b"".join(Path(path).read_bytes() for path in (self.ca_cert, *trusted)))
        return {"HTTPS_PROXY": self.proxy_url, "https_proxy": self.proxy_url, "NO_PROXY": direct,
                "no_proxy": direct, "REQUESTS_CA_BUNDLE": str(bundle), "SSL_CERT_FILE": str(bundle)}


@contextmanager
def schema_mirror(folder: Path, documents: Mapping[str, dict]) -> Iterator[Mirror]:
    """A running mirror serving ``documents`` (schema URL -> JSON document)."""
    authority = CertificateAuthority(folder / "mirror-ca")
    authority.init("Schema mirror CA")
    key, cert = authority.issue(folder / "mirror", "schema mirror", None, HOSTS)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    by_url = {url.split("#")[0]: json.dumps(document).encode() for url, document in documents.items()}

    server = _ProxyServer(("127.0.0.1", 0), _Connect)
    server.tls, server.documents = tls, by_url
    server.mirror = Mirror(f"http://127.0.0.1:{server.server_address[1]}", authority.cert_path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.mirror
    finally:
        server.shutdown()
        server.server_close()


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    tls: ssl.SSLContext
    documents: dict[str, bytes]
    mirror: Mirror


class _Connect(socketserver.StreamRequestHandler):
    """One proxy connection: ``CONNECT host:443``, then the schema requests inside the tunnel."""

    server: _ProxyServer

    def handle(self) -> None:
        line = self.rfile.readline(4096).decode("latin-1").split()
        while self.rfile.readline(4096) not in (b"\r\n", b"\n", b""):
            pass
        host = line[1].rsplit(":", 1)[0] if len(line) == 3 and line[0] == "CONNECT" else ""
        if host not in HOSTS:
            self.server.mirror.refused.append(" ".join(line[:2]))
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        try:
            tunnel = self.server.tls.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            return
        _Schemas(tunnel, self.client_address, self.server, host)


class _Schemas(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, request: socket.socket, client_address, server: _ProxyServer, host: str):
        self.host = host
        super().__init__(request, client_address, server)

    def do_GET(self) -> None:
        url = f"https://{self.host}{self.path.split('?')[0]}"
        found = url in self.server.documents
        (self.server.mirror.served if found else self.server.mirror.refused).append(url)
        body = self.server.documents[url] if found else b'{"error": "not mirrored"}'
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/schema+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        pass
