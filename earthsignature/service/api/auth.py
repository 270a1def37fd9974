"""Mutual TLS for the gRPC API: the project CA, certificates with roles, CSRs, revocation.

Every caller presents a certificate signed by the project CA (anything else is refused during the TLS
handshake). Its role is the subject's organizational unit: ``internal`` (the monitor: may create
products) or ``pilot`` (may query). The certificate exchange the seed left in progress:

1. the operator makes the CA and the server certificate: ``earthsignature certs init``;
2. a pilot makes a key and a CSR on their side: ``earthsignature certs request --name acme``
   (the key never leaves them);
3. the operator signs it: ``earthsignature certs issue --role pilot --csr acme.csr``;
4. revoking is adding the serial to a deny list the server rereads when it changes:
   ``earthsignature certs revoke SERIAL``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from earthsignature.core.layout import AuthorityFolder, CertificateFolder, Identity

log = logging.getLogger(__name__)
ROLES = ("internal", "pilot")
VALIDITY_DAYS = 825


class AuthError(ValueError):
    """A certificate operation that cannot be done; the message says why."""


@dataclass(frozen=True)
class Caller:
    common_name: str
    role: str
    serial: int


@dataclass(frozen=True)
class TlsFiles:
    """What a server needs for mutual TLS: the CA that signs clients, its own identity, the revocations."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    revoked: Path | None = None
    link_keys: Path | None = None  # the folder of the keys that sign map links (None: links are not signed)

    @classmethod
    def from_folder(cls, folder: CertificateFolder) -> TlsFiles:
        server = folder.identity("server")
        return cls(folder.ca_cert, server.cert, server.key, folder.revoked, folder.link_keys)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path


def _name(common_name: str, role: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EarthSignature"),
                  x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if role:
        attributes.insert(1, x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role))
    return x509.Name(attributes)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CertificateAuthority:
    """A CA in its own folder (``AuthorityFolder``: certificate, key, revoked serials)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.files = AuthorityFolder(self.folder)

    @property
    def cert_path(self) -> Path:
        return self.files.cert

    @property
    def revoked_path(self) -> Path:
        return self.files.revoked

    def exists(self) -> bool:
        return self.cert_path.exists() and self.files.key.exists()

    def init(self, name: str = "EarthSignature CA") -> None:
        """Create the CA (once)."""
        if self.exists():
            return
        key = _key()
        subject = _name(name)
        certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                       .public_key(key.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(_now() - dt.timedelta(minutes=5))
                       .not_valid_after(_now() + dt.timedelta(days=3650))
                       .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                       .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                      critical=True)
                       .sign(key, hashes.SHA256()))
        _write(self.files.key, _pem_key(key), private=True)
        _write(self.cert_path, certificate.public_bytes(serialization.Encoding.PEM))
        if not self.revoked_path.exists():
            self.revoked_path.write_text("[]\n")

    def _signer(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if not self.exists():
            raise AuthError(f"no CA in {self.folder}: run `earthsignature certs init` first")
        certificate = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        key = serialization.load_pem_private_key(self.files.key.read_bytes(), password=None)
        return certificate, key

    def sign(self, csr: x509.CertificateSigningRequest, role: str | None, server_names: tuple[str, ...] = (),
             days: int = VALIDITY_DAYS) -> x509.Certificate:
        """A certificate for ``csr``: a client one carrying ``role``, or a server one for ``server_names``."""
        if not csr.is_signature_valid:
            raise AuthError("the CSR's signature does not verify")
        if role is not None and role not in ROLES:
            raise AuthError(f"role must be one of {ROLES}, not {role!r}")
        ca_cert, ca_key = self._signer()
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not names:
            raise AuthError("the CSR has no common name")
        builder = (x509.CertificateBuilder().subject_name(_name(names[0].value, role))
                   .issuer_name(ca_cert.subject).public_key(csr.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(_now() - dt.timedelta(minutes=5)).not_valid_after(_now() + dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
        if server_names:
            sans = [x509.IPAddress(ipaddress.ip_address(n)) if _is_ip(n) else x509.DNSName(n) for n in server_names]
            builder = (builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        else:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    def issue(self, out_dir: Path, name: str, role: str | None,
              server_names: tuple[str, ...] = ()) -> tuple[Path, Path]:
        """Make a key and a signed certificate in one go (server, internal services, tests)."""
        key_path, csr_path = request_certificate(out_dir, name)
        csr = x509.load_pem_x509_csr(csr_path.read_bytes())
        certificate = self.sign(csr, role, server_names)
        cert_path = _write(Identity.named(out_dir, name).cert, certificate.public_bytes(serialization.Encoding.PEM))
        csr_path.unlink()
        return key_path, cert_path

    def revoke(self, serial: int) -> None:
        revoked = set(self.revoked())
        revoked.add(int(serial))
        partial = self.revoked_path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(json.dumps(sorted(revoked)) + "\n")
        partial.replace(self.revoked_path)

    def revoked(self) -> list[int]:
        return json.loads(self.revoked_path.read_text()) if self.revoked_path.exists() else []


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def request_certificate(out_dir: Path, name: str) -> tuple[Path, Path]:
    """A new private key and a CSR for ``name`` (what a pilot runs on their side)."""
    key = _key()
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(name)).sign(key, hashes.SHA256())
    files = Identity.named(out_dir, name)
    key_path = _write(files.key, _pem_key(key), private=True)
    csr_path = _write(files.request, csr.public_bytes(serialization.Encoding.PEM))
    return key_path, csr_path


def init_certificates(folder: CertificateFolder, identities: Sequence[str] = ("server", "monitor"),
                      server_names: Sequence[str] = ("127.0.0.1", "localhost")) -> CertificateAuthority:
    """The project CA and its own ``identities`` (see ``CertificateFolder.ROLES``), each made once."""
    ca = CertificateAuthority(folder.authority.path)
    ca.init()
    for name in identities:
        if not folder.identity(name).cert.exists():
            names = tuple(server_names) if name == "server" else ()
            ca.issue(folder.identity_dir(name), name, CertificateFolder.ROLES[name], names)
    return ca


def caller_from_pem(pem: bytes) -> Caller:
    """The caller a verified client certificate names: exactly one common name and at most one role
    (organizational unit); anything else is refused rather than guessed."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as error:
        raise AuthError("the client certificate cannot be read") from error
    units = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    serial = format_serial(certificate.serial_number)
    if len(names) != 1 or not str(names[0].value).strip():
        raise AuthError(f"certificate {serial} must name exactly one common name (CN)")
    if len(units) > 1:
        raise AuthError(f"certificate {serial} names {len(units)} roles (OU); exactly one is allowed")
    return Caller(str(names[0].value), str(units[0].value) if units else "", certificate.serial_number)


def format_serial(serial: int) -> str:
    """A serial as openssl prints it (``x509 -serial``): upper-case hexadecimal."""
    return f"{serial:X}"


def parse_serial(text: str) -> int:
    """A serial as openssl prints it, hexadecimal (``serial=3A4F``, ``3a:4f``, ``0x3a4f``, ``3A4F``), or
    in decimal when it is digits only (``3A4F``-style serials made only of digits: write them with
    ``serial=`` or ``0x``)."""
    cleaned = text.strip()
    hexadecimal = cleaned.lower().startswith(("serial=", "0x")) or ":" in cleaned or not cleaned.isdigit()
    cleaned = cleaned.split("=", 1)[-1].lower().removeprefix("0x").replace(":", "")
    try:
        return int(cleaned, 16 if hexadecimal else 10)
    except ValueError:
        raise AuthError(f"{text[:40]!r} is not a certificate serial (decimal or hexadecimal)") from None


class RevocationUnavailable(RuntimeError):
    """The revocation list is missing or unreadable: callers are refused until it is mended."""


class RevocationList:
    """The CA's deny list, reread whenever the file changes. It fails closed: when a list is configured
    and cannot be read, ``revoked`` raises instead of letting anybody through."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None
        self._mtime: int | None = None
        self._serials: frozenset[int] = frozenset()

    def __contains__(self, serial: int) -> bool:
        if self.path is None:  # no list configured (insecure local mode)
            return False
        try:
            mtime = self.path.stat().st_mtime_ns
            if mtime != self._mtime:
                serials = json.loads(self.path.read_text())
                if not isinstance(serials, list) or not all(isinstance(s, int) for s in serials):
                    raise ValueError("not a JSON list of serial numbers")
                self._serials, self._mtime = frozenset(serials), mtime
        except (OSError, ValueError, RecursionError) as error:
            log.error("revocation list %s unusable (%s): refusing every caller", self.path, error)
            raise RevocationUnavailable("the server cannot check certificate revocations now; retry later"
                                        ) from error
        return serial in self._serials
