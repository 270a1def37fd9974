"""POST search bodies checked before the STAC app's models see them.

stac-fastapi's request models assume a JSON object (a list, a string or a number reached a model validator as
``AttributeError``: a 500), and FastAPI echoes refused values back (``1e400`` parsed as infinity could not be
written as JSON: a 500 again). This guard reads the body (the HTTP server already bounded its size), requires
``application/json`` holding one JSON object of finite numbers, validates it with the app's own POST model
and answers every failure as 400 with where and why. A ``filter`` in CQL2 text (``filter-lang: cql2-text``,
as the README shows) is turned into CQL2 JSON here, which is all the STAC models accept.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool

from earthsignature.service.api.errors import Code
from earthsignature.service.api.http_context import status_response
from earthsignature.service.catalog import stac_filter


class BodyRefused(ValueError):
    pass


def _no_constant(name: str):
    raise BodyRefused(f"{name} is not a JSON number")


def strict_json(text: str | bytes):
    """JSON as the standard has it: ``NaN`` and ``Infinity`` (which Python's reader takes) are refused with
    ``BodyRefused``, a ``ValueError``."""
    return json.loads(text, parse_constant=_no_constant)


def read_object(body: bytes, content_type: str) -> dict[str, Any]:
    """The body as a JSON object, or ``BodyRefused`` saying why not."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise BodyRefused(f"a search body must be sent as application/json, not {content_type[:60]!r}")
    try:
        value = strict_json(body)
    except RecursionError:
        raise BodyRefused("the body nests too deeply") from None
    except ValueError as error:
        raise BodyRefused(f"the body is not JSON: {str(error)[:120]}") from None
    if not isinstance(value, dict):
        raise BodyRefused(f"a search body is a JSON object, not {type(value).__name__}")
    return value


def validated(value: dict[str, Any], model) -> None:
    """Whatever the model's validation raises on a client's body is that body's fault: a 400, never a 500."""
    try:
        model.model_validate(value)
    except Exception as error:  # pydantic's ValidationError, and model validators' own failures
        problems = getattr(error, "errors", None)
        if callable(problems):
            described = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))[:80]}: {str(e.get('msg'))[:120]}"
                                  for e in problems(include_input=False)[:5])
        else:
            described = f"{type(error).__name__}: {str(error)[:160]}"
        raise BodyRefused(f"invalid search: {described}") from None


class SearchBodies:
    """ASGI guard for ``POST .../search`` of the STAC app (``core``: the service core, its parsers and limits)."""

    def __init__(self, app, post_model, core):
        self.app, self.post_model, self.core = app, post_model, core

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].rstrip("/").endswith("/search"):
            return await self.app(scope, receive, send)
        body = await _read_all(receive)
        headers = dict(scope.get("headers") or [])
        try:
            value = read_object(body, headers.get(b"content-type", b"").decode("latin-1"))
            value = await run_in_threadpool(self._cql2_json, value)
            validated(value, self.post_model)
        except (BodyRefused, stac_filter.FilterError) as error:
            message = str(error)
            return await status_response(Code.INVALID_ARGUMENT, message, description=message)(scope, receive, send)
        replay = json.dumps(value).encode()
        headers[b"content-length"] = str(len(replay)).encode()
        sent = [False]

        async def replayed():
            if sent[0]:
                return await receive()
            sent[0] = True
            return {"type": "http.request", "body": replay, "more_body": False}

        await self.app({**scope, "headers": list(headers.items())}, replayed, send)

    def _cql2_json(self, value: dict[str, Any]) -> dict[str, Any]:
        if isinstance(value.get("filter"), str) and value.get("filter-lang", "cql2-text") == "cql2-text":
            tree = stac_filter.parse(value["filter"], "cql2-text", self.core.parsers, self.core.limits.max_filter_terms)
            return {**value, "filter": tree, "filter-lang": "cql2-json"}
        return value


async def _read_all(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            return b"".join(chunks)
