"""Access tokens: a pilot's client certificate exchanged for a short-lived bearer token, for the tools that can
send a header but not a client certificate (stac-api-validator's ``--auth-bearer-token``, pystac-client's
``headers``, GDAL's ``GDAL_HTTP_HEADERS``, QGIS's HTTP header authentication, curl ``-H``).

``GET /v1/token`` with the certificate answers a token; every HTTP route then accepts ``Authorization: Bearer
<token>`` in its place until it expires. A token is signed like a map link (``signed_links``: HMAC-SHA256, the
same keys, rotation and lifetime) over the caller's name and certificate serial, so revoking the certificate
ends its tokens at once (the serial is checked on every use). Only certificates mint tokens, never a token, and
a token is a pilot's: creating products stays with the internal certificates on gRPC.

The token is ``es1.`` and the base64url of ``<serial hex>/<expires>/<key id>/<caller>/<signature>``.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from dataclasses import dataclass

from earthsignature.service.api.signed_links import (
    PARAMETERS,
    BadSignature,
    ExpiredSignature,
    LinkSigner,
    joined_parts,
)

PREFIX = "es1."


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_at: int  # unix time
    lifetime_s: int


@dataclass(frozen=True)
class TokenHolder:
    """Who a valid token was issued to."""

    common_name: str
    serial: int


def _scope(serial: int) -> str:
    return f"bearer:{serial:x}"


def issue(signer: LinkSigner, common_name: str, serial: int, now: float | None = None) -> AccessToken:
    """A token for the holder of certificate ``serial``."""
    parts = signer.signature(_scope(serial), common_name, now)
    encoded = base64.urlsafe_b64encode("/".join([f"{serial:x}", *joined_parts(parts)]).encode()).decode()
    return AccessToken(PREFIX + encoded.rstrip("="), int(parts["expires"]), int(signer.lifetime_s))


def verify(signer: LinkSigner, token: str, now: float | None = None) -> TokenHolder:
    """The holder of a valid token, or ``BadSignature`` saying what is wrong with it."""
    if not token.startswith(PREFIX) or len(token) > 1024:
        raise BadSignature("not an access token of this server (ask GET /v1/token for one)")
    body = token.removeprefix(PREFIX)
    try:
        serial_hex, *values = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().split("/")
        serial = int(serial_hex, 16)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadSignature("the access token is damaged: ask GET /v1/token for a new one") from None
    if len(values) != len(PARAMETERS) or not values[0].isdigit():
        raise BadSignature("the access token is damaged: ask GET /v1/token for a new one")
    parts = {name: urllib.parse.unquote(value) for name, value in zip(PARAMETERS, values, strict=True)}
    try:
        return TokenHolder(signer.verify(_scope(serial), parts, now), serial)
    except ExpiredSignature:
        raise BadSignature("the access token has expired: ask GET /v1/token for a new one") from None
    except BadSignature:
        raise BadSignature("the access token was not signed by this server, or was altered") from None
