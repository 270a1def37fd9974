"""``earthsignature serve``: the Database service's gRPC server.

Mutual TLS by default (client certificates signed by the project CA; no certificate or a foreign CA is
refused at the handshake), an insecure local mode only behind an explicit flag, gRPC health checking
and server reflection (so ``grpcurl`` works), message size limits, uncompressed requests only, and a
graceful stop. A grpc.aio server: its event loop (``LoopThread``) receives requests and sends answers, the
service's methods run in handler threads (``handler_threads``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from earthsignature.core.settings import ApiLimits
from earthsignature.pb.snapearth.api.v1 import database_pb2, statistics_pb2
from earthsignature.service.api.auth import RevocationList, TlsFiles
from earthsignature.service.api.core import DatabaseCore
from earthsignature.service.api.handler_threads import streaming, unary
from earthsignature.service.api.loop_thread import LoopThread
from earthsignature.service.api.servicer import DatabaseService
from earthsignature.service.api.signed_links import LinkKeys, LinkSigner
from earthsignature.service.api.wire import Undecodable
from earthsignature.service.catalog.catalog import Catalog
from earthsignature.service.catalog.raster_store import RasterStore
from earthsignature.service.catalog.schema import upgrade

SERVICE_NAME = database_pb2.DESCRIPTOR.services_by_name["DatabaseProductService"].full_name
MAX_REQUEST_BYTES = 256 * 1024 * 1024  # a whole 10980 x 10980 product, compressed, fits
MAX_STREAMS_PER_CONNECTION = 100  # calls at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS)


@dataclass
class ApiServer:
    grpc_server: grpc.aio.Server
    port: int
    catalog: Catalog
    core: DatabaseCore  # what the HTTP app in the same process serves too
    loop: LoopThread  # the gRPC server's event loop
    handler_threads: ThreadPoolExecutor  # where the service's (synchronous) methods run

    def stop(self, grace: float | None = 5.0) -> None:
        """Finish in-flight calls (up to ``grace`` seconds), then release the database."""
        if self.loop.loop.is_closed():
            return
        self.loop.run(self.grpc_server.stop(grace))
        self.handler_threads.shutdown(wait=True)  # the methods still running end by their deadline checks
        self.loop.close()
        self.core.close()
        self.catalog.dispose()

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(grace=None)


def _tolerant(message_class):
    """A deserializer that hands undecodable bytes to the service as ``Undecodable`` (answered with
    INVALID_ARGUMENT) instead of failing inside grpcio (which answers INTERNAL)."""
    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except (DecodeError, RuntimeError, ValueError):
            return Undecodable(message_class.DESCRIPTOR.name)
    return parse


def _handlers(service: DatabaseService, threads: ThreadPoolExecutor) -> grpc.GenericRpcHandler:
    """The service's methods, as the generated code registers them but with tolerant parsing, run in
    ``threads`` (``handler_threads``)."""
    response = database_pb2.SegmentationResponse.SerializeToString
    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "ListSegmentation": grpc.unary_stream_rpc_method_handler(
            streaming(service.ListSegmentation, threads), _tolerant(database_pb2.ListSegmentationRequest),
            response),
        "SearchSegmentation": grpc.unary_stream_rpc_method_handler(
            streaming(service.SearchSegmentation, threads), _tolerant(database_pb2.SearchSegmentationRequest),
            response),
        "CreateProduct": grpc.unary_unary_rpc_method_handler(
            unary(service.CreateProduct, threads), _tolerant(database_pb2.CreateProductRequest),
            database_pb2.CreateProductResponse.SerializeToString),
        "AreaStatistics": grpc.unary_unary_rpc_method_handler(
            unary(service.AreaStatistics, threads), _tolerant(statistics_pb2.AreaStatisticsRequest),
            statistics_pb2.AreaStatisticsResponse.SerializeToString),
        "AreaChange": grpc.unary_unary_rpc_method_handler(
            unary(service.AreaChange, threads), _tolerant(statistics_pb2.AreaChangeRequest),
            statistics_pb2.AreaChangeResponse.SerializeToString),
    })


def build_server(database_url: str, store_url: str, address: str, tls: TlsFiles | None, insecure: bool = False,
                 limits: ApiLimits | None = None, workers: int = 16, migrate: bool = True,
                 max_request_bytes: int = MAX_REQUEST_BYTES, share_port: bool = False,
                 public_url: str | None = None, store_endpoint: str | None = None) -> ApiServer:
    """A started server on ``address`` (port 0: any free port); its maps in the store at ``store_url``
    (``store_endpoint``: an S3-compatible store's address, ``RasterStore``)."""
    if tls is None and not insecure:
        raise ValueError("TLS files are required unless insecure mode is asked for explicitly")
    limits = limits or ApiLimits()
    if migrate:
        upgrade(database_url)
    catalog = Catalog(database_url, pool_size=min(workers, 20), statement_timeout_ms=limits.statement_timeout_ms,
                      lock_timeout_ms=limits.lock_timeout_ms)
    signer = (LinkSigner(LinkKeys(tls.link_keys), limits.link_lifetime_s)
              if tls is not None and tls.link_keys is not None else None)
    core = DatabaseCore(catalog, RasterStore(store_url, store_endpoint), limits,
                        RevocationList(tls.revoked if tls else None), insecure=tls is None, public_url=public_url,
                        signer=signer)
    service = DatabaseService(core)
    loop, handler_threads = LoopThread("grpc-server"), ThreadPoolExecutor(workers, "grpc-handler")
    options = [
        ("grpc.max_receive_message_length", max_request_bytes),
        ("grpc.max_send_message_length", limits.max_response_bytes + 1024 * 1024),
        # several server processes on one port only when asked: otherwise a second server fails to bind
        ("grpc.so_reuseport", 1 if share_port else 0),
        # requests are taken uncompressed only: a compressed one could inflate to max_request_bytes from a
        # thousandth of that (the maps inside a request are compressed already)
        ("grpc.compression_enabled_algorithms_bitset", 1 << grpc.Compression.NoCompression.value),
        ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
    ]

    async def start() -> tuple[grpc.aio.Server, int]:
        # grpc.aio: the event loop receives requests and sends answers, so a call whose request never arrives
        # or whose answers are not read holds no thread; the service's methods run in handler_threads
        server = grpc.aio.server(options=options)
        server.add_generic_rpc_handlers((_handlers(service, handler_threads),))
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            credentials = grpc.ssl_server_credentials(
                [(tls.server_key.read_bytes(), tls.server_cert.read_bytes())],
                root_certificates=tls.ca_cert.read_bytes(), require_client_auth=True)
            port = server.add_secure_port(address, credentials)
        await server.start()
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        return server, port

    try:
        server, port = loop.run(start())
    except BaseException:
        loop.close()
        handler_threads.shutdown()
        raise
    return ApiServer(server, port, catalog, core, loop, handler_threads)
