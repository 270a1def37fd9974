"""Certificates for the API tests: the project CA, its server, internal and pilot identities, and a foreign CA."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from earthsignature.service.api.auth import CertificateAuthority


@dataclass
class Certificates:
    ca: CertificateAuthority
    server: tuple[Path, Path]
    internal: tuple[Path, Path]
    pilot: tuple[Path, Path]
    foreign_ca: Path
    foreign: tuple[Path, Path]


def make_certificates(folder: Path) -> Certificates:
    ca = CertificateAuthority(folder / "ca")
    ca.init()
    foreign = CertificateAuthority(folder / "foreign")
    foreign.init("Somebody else")
    return Certificates(
        ca=ca, server=ca.issue(folder / "server", "server", None, ("127.0.0.1", "localhost")),
        internal=ca.issue(folder / "internal", "monitor", "internal"),
        pilot=ca.issue(folder / "pilot", "acme", "pilot"),
        foreign_ca=foreign.cert_path, foreign=foreign.issue(folder / "foreign-client", "mallory", "internal"))


@contextmanager
def server_with_http_app(database_url: str, folder: Path, limits=None, store_url: str | None = None,
                         store_endpoint: str | None = None) -> Iterator[tuple[Certificates, object, object]]:
    """The Database service with its HTTP app, both on 127.0.0.1 with real TLS: (certificates, server, app);
    its maps in a folder of ``folder``, or at ``store_url`` (``store_endpoint``: an S3-compatible server's)."""
    from earthsignature.embedded.ports import free_port
    from earthsignature.service.api.auth import TlsFiles
    from earthsignature.service.api.http_server import start_gateway
    from earthsignature.service.api.server import build_server

    certs = make_certificates(folder / "certs")
    tls = TlsFiles(certs.ca.cert_path, certs.server[1], certs.server[0], certs.ca.revoked_path,
                   folder / "certs" / "link-keys")  # map links signed, as `serve` signs them
    http_port = free_port()
    with build_server(database_url, store_url or str(folder / "store"), "127.0.0.1:0", tls, limits=limits,
                      public_url=f"https://127.0.0.1:{http_port}", store_endpoint=store_endpoint) as server:
        gateway = start_gateway(server.core, ("127.0.0.1", http_port), tls)
        try:
            yield certs, server, gateway
        finally:
            gateway.stop()


def client_of(certs: Certificates, server, who: str = "internal"):
    from earthsignature.client import EarthSignatureClient

    key, cert = getattr(certs, who)
    return EarthSignatureClient(f"127.0.0.1:{server.port}", ca=certs.ca.cert_path, cert=cert, key=key)


def https_context(certs: Certificates, who: str = "pilot"):
    """An SSL context that trusts the project CA and presents ``who``'s certificate."""
    import ssl

    context = ssl.create_default_context(cafile=str(certs.ca.cert_path))
    key, cert = getattr(certs, who)
    context.load_cert_chain(str(cert), str(key))
    return context


def https(context, url: str, body: bytes | None = None, content_type: str = "application/json",
          timeout_s: float = 60.0) -> tuple[int, dict]:
    """(HTTP status, JSON body) of a GET, or of a POST when ``body`` is given; errors are answers too."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type} if body else {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout_s) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def search_on_map_page(page, collection: str, categories: tuple[str, ...] = (),
                       center: tuple[float, float] = (10, 40), zoom: int = 3) -> None:
    """A pilot's search on the map page: a model, August 2021, optional categories, run from a view away from
    the results (which the page then fits), waited for until the page says it is done."""
    page.select_option("#collection", collection)
    page.fill("#start", "2021-08-01")
    page.fill("#end", "2021-08-31")
    if categories:
        page.select_option("#categories", list(categories))
    page.evaluate(f"map.getView().setCenter(ol.proj.fromLonLat([{center[0]}, {center[1]}])); "
                  f"map.getView().setZoom({zoom})")
    page.click("#run")
    page.wait_for_selector("body[data-state=done]", timeout=30_000)


@contextmanager
def map_page_in_chromium(certs: Certificates, root: str, query: str = "", height: int = 800) -> Iterator[object]:
    """The map page in Debian's headless Chromium, presenting the pilot's certificate (Playwright's client
    certificates; the project CA is not the OS's), once the page says it is ready. Any script error on the
    page fails the test when the page closes."""
    import shutil

    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Chromium is installed by `make setup` (scripts/os-packages.sh)"
    key, cert = certs.pilot
    errors = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            context = browser.new_context(
                client_certificates=[{"origin": root, "certPath": str(cert), "keyPath": str(key)}],
                ignore_https_errors=True, viewport={"width": 1280, "height": height})
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))  # a script that failed to run
            page.goto(f"{root}/map{query}")
            page.wait_for_selector("body[data-state=ready]", timeout=30_000)
            yield page
        finally:
            browser.close()
    assert errors == []
