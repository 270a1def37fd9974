"""Map links any tool can open: short-lived signatures, like object storage's pre-signed URLs.

A pilot authenticated by mutual TLS receives map links (STAC assets, a gRPC answer's ``map_url`` and
``quicklook``, the XYZ template and TileJSON) under a signed folder,
``/v1/maps/<collection>/<item>/signed/<expires>/<key>/<caller>/<signature>/<file>``: an HMAC-SHA256 over the
item's folder of files (``/v1/maps/<collection>/<item>/``), the expiry (unix time) and the caller's common
name. GDAL, QGIS, a browser or a notebook opens such a link without a client certificate until it expires; an
expired, altered or foreign signature is refused (403). The signature is part of the path, not a query string,
so every file of the item (the COG, its legend sidecars, its pictures, tiles and the product's quicklook) sits
in the same signed folder and GDAL finds ``classes.tif.aux.xml`` beside the COG as it does on a disk (GDAL 3.6
does not look for sidecars of a URL with a query string).

Keys live in the certificate folder (``link-keys/current.key``, made on first use) or in a secret file
(``api.link_key_file``); ``rotate`` makes a new current key and keeps the previous one valid, so links signed
just before a rotation keep working for their lifetime.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

#: The parts of a signed folder, in the order its path holds them (after ``signed/``).
PARAMETERS = ("expires", "key", "caller", "signature")
SIGNED = "signed"


class BadSignature(ValueError):
    """A link whose signature is expired, altered, or not made by this server; the message says which."""


class ExpiredSignature(BadSignature):
    """A signature this server made, past its expiry."""


@dataclass(frozen=True)
class SigningKey:
    key_id: str  # the key's short fingerprint, written in the link so a rotation keeps older links readable
    secret: bytes


def _key(secret: bytes) -> SigningKey:
    return SigningKey(hashlib.sha256(b"key-id:" + secret).hexdigest()[:8], secret)


class LinkKeys:
    """The current signing key and, after a rotation, the previous one, kept in a folder (mode 0600 files).
    A running server rereads them when they change (``certs rotate-link-key`` needs no restart)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._read: tuple[tuple, list[SigningKey]] | None = None

    @property
    def current_file(self) -> Path:
        return self.folder / "current.key"

    @property
    def previous_file(self) -> Path:
        return self.folder / "previous.key"

    def keys(self) -> list[SigningKey]:
        """The current key (made when there is none) and the previous one, if any."""
        stamp = (_modified(self.current_file), _modified(self.previous_file))  # a stat each: once per link signed
        if stamp[0] is None:
            self._write(self.current_file, secrets.token_bytes(32))
            stamp = (_modified(self.current_file), stamp[1])
        if self._read is None or self._read[0] != stamp:
            keys = [_key(self.current_file.read_bytes())]
            if stamp[1] is not None:
                keys.append(_key(self.previous_file.read_bytes()))
            self._read = (stamp, keys)
        return self._read[1]

    def rotate(self) -> SigningKey:
        """A new current key; the one it replaces stays valid (as previous) until the next rotation."""
        current = self.keys()[0]
        self._write(self.previous_file, current.secret)
        self._write(self.current_file, secrets.token_bytes(32))
        return self.keys()[0]

    def _write(self, path: Path, secret: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_suffix(".partial")
        partial.touch(mode=0o600)
        partial.write_bytes(secret)
        partial.replace(path)


def _modified(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return None


class LinkSigner:
    """Signs an item's folder of files for a caller, and checks such signatures."""

    def __init__(self, keys: LinkKeys, lifetime_s: float):
        self.source, self.lifetime_s = keys, lifetime_s

    @property
    def keys(self) -> list[SigningKey]:
        return self.source.keys()

    def signature(self, scope: str, caller: str, now: float | None = None) -> dict[str, str]:
        """The parts (``PARAMETERS``) of a signature over ``scope`` for ``caller``, made with the current key."""
        key = self.keys[0]
        expires = int((time.time() if now is None else now) + self.lifetime_s)
        signature = self._mac(key.secret, scope, expires, caller)
        return {"expires": str(expires), "key": key.key_id, "caller": caller, "signature": signature}

    def sign(self, scope: str, caller: str, now: float | None = None) -> str:
        """The signed folder (``signed/<expires>/<key>/<caller>/<signature>``) that opens every file under
        ``scope`` (a path ending in ``/``) for ``caller``."""
        return "/".join([SIGNED, *joined_parts(self.signature(scope, caller, now))])

    def verify(self, scope: str, parts: dict[str, str], now: float | None = None) -> str:
        """The caller a signed folder (its parts, decoded) was made for, or ``BadSignature``."""
        try:
            expires, key_id, caller, signature = (parts[name] for name in PARAMETERS)
            expires_at = int(expires)
        except (KeyError, ValueError) as error:
            raise BadSignature(f"a signed link carries {', '.join(PARAMETERS)}") from error
        # compared as bytes: compare_digest refuses str with non-ASCII characters (a link's parts are anything)
        key = next((k for k in self.keys if hmac.compare_digest(k.key_id.encode(), key_id.encode())), None)
        if key is None or not hmac.compare_digest(self._mac(key.secret, scope, expires_at, caller).encode(),
                                                  signature.encode()):
            raise BadSignature("the link's signature does not match it: ask for a new link")
        if expires_at < (time.time() if now is None else now):
            raise ExpiredSignature("the link has expired: ask for a new link (a query answers with fresh ones)")
        return caller

    @staticmethod
    def _mac(secret: bytes, scope: str, expires: int, caller: str) -> str:
        message = f"{scope}\n{expires}\n{caller}".encode()
        return hmac.new(secret, message, hashlib.sha256).hexdigest()


def joined_parts(parts: dict[str, str]) -> list[str]:
    """A signature's parts in ``PARAMETERS`` order, each quoted to be one path segment."""
    return [urllib.parse.quote(parts[name], safe="") for name in PARAMETERS]
