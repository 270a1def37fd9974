"""The client sends a call answered UNAVAILABLE again (a server restarting, its database away), on a real
gRPC server on 127.0.0.1 that is unavailable for its first answers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from earthsignature.client import EarthSignatureClient
from earthsignature.pb.snapearth.api.v1 import database_pb2

SERVICE = database_pb2.DESCRIPTOR.services_by_name["DatabaseProductService"].full_name


@pytest.fixture
def flaky_server():
    """A server whose CreateProduct answers UNAVAILABLE twice, then succeeds; the calls it received."""
    calls: list[str] = []

    def create(request, context):
        calls.append(request.product_id)
        if len(calls) <= 2:
            context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        return database_pb2.CreateProductResponse(product_id=request.product_id, segmentation_id="1", created=True)

    server = grpc.server(ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "CreateProduct": grpc.unary_unary_rpc_method_handler(
            create, database_pb2.CreateProductRequest.FromString,
            database_pb2.CreateProductResponse.SerializeToString)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", calls
    server.stop(None)


def test_unavailable_answers_are_retried(flaky_server) -> None:
    address, calls = flaky_server
    with EarthSignatureClient(address, insecure=True, timeout_s=30) as client:
        answer = client.create(database_pb2.CreateProductRequest(product_id="p1"))
    assert answer.created and calls == ["p1", "p1", "p1"]


def test_retries_can_be_turned_off(flaky_server) -> None:
    address, calls = flaky_server
    with EarthSignatureClient(address, insecure=True, timeout_s=30, retries=0) as client, \
            pytest.raises(grpc.RpcError) as raised:
        client.create(database_pb2.CreateProductRequest(product_id="p1"))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE and calls == ["p1"]
