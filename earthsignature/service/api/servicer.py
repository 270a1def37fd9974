"""The seed's ``DatabaseProductService`` over gRPC: an adapter of the service core.

Each call reads the caller's verified certificate from gRPC's TLS layer, translates the request (``wire``),
calls the core under the request's deadline (the server's budget, or the client's own shorter one) and
answers; every error becomes its status code here, by cause (``errors.as_api_error``): bad input
INVALID_ARGUMENT with a message that says what to fix, never UNKNOWN.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc

from earthsignature.pb.snapearth.api.v1 import database_pb2_grpc
from earthsignature.service.api import wire
from earthsignature.service.api.auth import Caller
from earthsignature.service.api.core import DatabaseCore
from earthsignature.service.api.errors import DATABASE_DOWN, ApiError, Unavailable, as_api_error
from earthsignature.service.catalog.ingest import OutcomeUnknown, StorageFailure

log = logging.getLogger(__name__)


class DatabaseService(database_pb2_grpc.DatabaseProductServiceServicer):
    def __init__(self, core: DatabaseCore):
        self.core = core

    def CreateProduct(self, request, context):
        return _answer(context, lambda: self._create(request, context))

    def ListSegmentation(self, request, context):
        yield from _stream(context, lambda: self._list(request, context))

    def SearchSegmentation(self, request, context):
        yield from _stream(context, lambda: self._search(request, context))

    def AreaStatistics(self, request, context):
        return _answer(context, lambda: self._statistics(request, context))

    def AreaChange(self, request, context):
        return _answer(context, lambda: self._change(request, context))

    def caller(self, context: grpc.ServicerContext) -> Caller:
        certificates = context.auth_context().get("x509_pem_cert")
        return self.core.authorize(certificates[0] if certificates else None)

    def _create(self, request, context):
        caller = self.caller(context)
        self.core.require(caller, "internal")  # before reading the request: a pilot learns nothing of what it needs
        submission = wire.submission(request)
        try:
            return wire.created(self.core.create_product(caller, submission))
        except StorageFailure as error:  # the cause decides the code; the message says what was kept
            log.error("CreateProduct %s: %s", submission.product_id, error, exc_info=error.__cause__)
            lost = isinstance(error, OutcomeUnknown) or isinstance(error.__cause__, DATABASE_DOWN)
            raise (Unavailable if lost else ApiError)(str(error)) from error

    def _statistics(self, request, context):
        deadline = self.core.deadline(context.time_remaining())
        caller = self.caller(context)
        query = wire.statistics_query(request)
        return wire.statistics_response(query.model_name, self.core.area_statistics(caller, query, deadline))

    def _change(self, request, context):
        deadline = self.core.deadline(context.time_remaining())
        caller = self.caller(context)
        query = wire.change_query(request)
        return wire.change_response(query.model_name, self.core.area_change(caller, query, deadline))

    def _list(self, request, context) -> Iterator:
        deadline = self.core.deadline(context.time_remaining())
        caller = self.caller(context)
        answers = self.core.list_maps(caller, wire.list_query(request), deadline)
        yield from wire.responses(answers, request.raster_encoding, self.core, deadline)

    def _search(self, request, context) -> Iterator:
        deadline = self.core.deadline(context.time_remaining())
        caller = self.caller(context)
        answers = self.core.search_maps(caller, wire.text_query(request), deadline)
        yield from wire.responses(answers, request.raster_encoding, self.core, deadline)


def _abort(context: grpc.ServicerContext, error: Exception) -> None:
    """The status code for ``error``, by cause; nothing of the server's internals in the message."""
    answer = as_api_error(error)
    context.abort(grpc.StatusCode[answer.code.name], answer.message)


def _answer(context: grpc.ServicerContext, call):
    try:
        return call()
    except Exception as error:
        _abort(context, error)


def _stream(context: grpc.ServicerContext, produce) -> Iterator:
    try:
        yield from produce()
    except Exception as error:
        _abort(context, error)
