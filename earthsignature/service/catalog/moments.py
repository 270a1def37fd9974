"""One reading of client timestamps (RFC 3339 dates and date-times) for every API that takes them: the STAC
API's ``datetime`` parameter, CQL2 timestamp and date literals, the text query's ``after:``/``before:``."""

from __future__ import annotations

from datetime import UTC, datetime

MAX_CHARS = 64


class BadMoment(ValueError):
    """Text that is not a date or date-time the catalog can compare; the message quotes it, bounded."""


def parse_moment(text: object) -> datetime:
    """An RFC 3339 date or date-time as an aware UTC datetime (UTC when it names no zone).

    Lower-case ``t`` and ``z`` are RFC 3339 too; an offset that moves the instant out of years 1..9999
    (``0001-01-01T00:00:00+23:59``) is refused here rather than overflowing later."""
    raw = str(text).strip()
    if len(raw) > MAX_CHARS:
        raise BadMoment(f"{raw[:40]!r}… is not an RFC 3339 date or time")
    try:
        moment = datetime.fromisoformat(raw.upper().replace("Z", "+00:00"))
    except ValueError:
        raise BadMoment(f"{raw[:40]!r} is not an RFC 3339 date or time") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise BadMoment(f"{raw[:40]!r} is outside years 1..9999 in UTC") from None
