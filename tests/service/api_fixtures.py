"""Certificates for the API tests: the project CA, its server, internal and pilot identities, and a foreign CA."""

from __future__ import annotations

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
