"""Inference backends: a batch of normalised tiles in, the model's output out (class probabilities, or
logits for models exported before the softmax was part of the graph: ``manifest.output_kind``).

Two implementations of one small interface, chosen by config (``create_backend``):

* ``OnnxRuntimeBackend``: the model in-process (the embedded default), threads configurable;
* ``TritonBackend``: a Triton Inference Server over gRPC with ``tritonclient`` (URL, model name and
  version, TLS, timeouts, retries with exponential backoff, a clear error when the model is not ready).

Both split a request into chunks of the model's batch size, so callers may pass any number of tiles.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from earthsignature.core.layout import ModelFolder
from earthsignature.core.manifest import ModelManifest
from earthsignature.core.settings import BackendSettings


class InferenceError(RuntimeError):
    """Inference failed; the message says why (bad input, model not ready, server unreachable)."""


class ModelNotReadyError(InferenceError):
    pass


class InferenceBackend(Protocol):
    manifest: ModelManifest
    batch_size: int  # tiles per model call
    tiles_per_call: int  # tiles worth handing to one predict() (Triton: batch_size x requests in flight)

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        """[N, bands, H, W] float32 normalised tiles -> [N, classes, H, W] float32 model output."""
        ...


def check_tiles(tiles: np.ndarray, manifest: ModelManifest) -> np.ndarray:
    if tiles.ndim != 4:
        raise InferenceError(f"tiles must be [N, bands, H, W], got shape {tiles.shape}")
    if tiles.shape[1] != len(manifest.bands):
        raise InferenceError(
            f"{manifest.model_id} takes {len(manifest.bands)} bands ({', '.join(manifest.bands)}); "
            f"the tiles have {tiles.shape[1]}")
    return np.ascontiguousarray(tiles, dtype=np.float32)


def _in_batches(run, tiles: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([run(tiles[i:i + batch_size]) for i in range(0, len(tiles), batch_size)])


#: Execution providers of ONNX Runtime by their names in the settings.
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def onnxruntime_providers(names: Sequence[str]) -> list[str]:
    """ONNX Runtime's provider names for ``names`` (cpu, cuda, tensorrt), the CPU last; an unknown name or
    one this onnxruntime build lacks is an error that lists what there is."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    chosen = []
    for name in names:
        provider = PROVIDERS.get(name)
        if provider is None:
            raise InferenceError(f"unknown execution provider {name!r}; choose from {sorted(PROVIDERS)}")
        if provider not in available:
            raise InferenceError(f"this onnxruntime has no {name} provider (it has {', '.join(available)}); "
                                 "install onnxruntime-gpu on a machine with a GPU")
        chosen.append(provider)
    return [*[p for p in chosen if p != PROVIDERS["cpu"]], PROVIDERS["cpu"]]


class OnnxRuntimeBackend:
    def __init__(self, model_path: Path, manifest: ModelManifest, batch_size: int = 2, threads: int = 0,
                 providers: Sequence[str] = ("cpu",)):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: ONNX Runtime picks (all cores)
        self.session = ort.InferenceSession(str(model_path), options, providers=onnxruntime_providers(providers))
        self.manifest, self.batch_size = manifest, batch_size
        self.tiles_per_call = batch_size

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        tiles = check_tiles(tiles, self.manifest)
        name = self.manifest.input_name
        return _in_batches(lambda b: self.session.run(None, {name: b})[0], tiles, self.batch_size)


class TritonBackend:
    def __init__(self, url: str, manifest: ModelManifest, model_name: str | None = None,
                 model_version: str | None = None, batch_size: int = 8, timeout_s: float = 60.0,
                 retries: int = 3, backoff_s: float = 0.5, ssl: bool = False,
                 root_certificates: str | None = None, private_key: str | None = None,
                 certificate_chain: str | None = None, wait_ready_s: float = 0.0, in_flight: int = 2):
        import tritonclient.grpc as triton

        self._triton = triton
        self.url, self.manifest, self.batch_size = url, manifest, batch_size
        self.in_flight = max(1, in_flight)
        self.tiles_per_call = batch_size * self.in_flight  # a call sends in_flight requests at once
        self._requests = ThreadPoolExecutor(max_workers=self.in_flight, thread_name_prefix="triton-request")
        self.model_name = model_name or manifest.name
        self.model_version = str(model_version or manifest.version or "")
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.client = triton.InferenceServerClient(
            url, ssl=ssl, root_certificates=root_certificates, private_key=private_key,
            certificate_chain=certificate_chain)
        self.wait_until_ready(wait_ready_s)

    def wait_until_ready(self, timeout_s: float = 0.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.client.is_model_ready(self.model_name, self.model_version):
                    return
                reason = "is not ready (loading, failed to load, or absent from the repository)"
            except self._triton.InferenceServerException as error:
                reason = f"cannot be asked: {error.message()}"
            if time.monotonic() >= deadline:
                version = self.model_version or "latest"
                raise ModelNotReadyError(f"Triton at {self.url}: model {self.model_name} version {version} "
                                         f"{reason}")
            time.sleep(0.2)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        triton = self._triton
        request = triton.InferInput(self.manifest.input_name, list(batch.shape), "FP32")
        request.set_data_from_numpy(batch)
        output = triton.InferRequestedOutput(self.manifest.output_name)
        for attempt in range(self.retries + 1):
            try:
                result = self.client.infer(self.model_name, [request], model_version=self.model_version,
                                           outputs=[output], client_timeout=self.timeout_s)
                return result.as_numpy(self.manifest.output_name)
            except triton.InferenceServerException as error:
                transient = (error.status() or "").endswith(("UNAVAILABLE", "DEADLINE_EXCEEDED"))
                if not transient or attempt == self.retries:
                    raise InferenceError(f"Triton at {self.url} ({self.model_name}): {error.message()}") from error
                time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def predict(self, tiles: np.ndarray) -> np.ndarray:
        """Batches sent ``in_flight`` at a time (the gRPC client is thread-safe), results in order."""
        tiles = check_tiles(tiles, self.manifest)
        batches = [tiles[i:i + self.batch_size] for i in range(0, len(tiles), self.batch_size)]
        return np.concatenate(list(self._requests.map(self._infer, batches)))

    def close(self) -> None:
        self._requests.shutdown(wait=True)
        self.client.close()


def create_backend(settings: BackendSettings, model_dir: Path) -> InferenceBackend:
    """The backend ``settings.kind`` names, for the model in ``model_dir`` (model.onnx + manifest.json).

    ``onnxruntime``: ``threads``, ``batch_size``. ``triton``: ``url``, ``model_version``, ``batch_size``,
    ``timeout_s``, ``retries``, ``ssl`` and certificate paths.
    """
    folder = ModelFolder(Path(model_dir))
    manifest = ModelManifest.load(folder.manifest)
    if settings.kind == "onnxruntime":
        return OnnxRuntimeBackend(folder.onnx, manifest, settings.batch_size, settings.threads, settings.providers)
    if settings.kind == "triton":
        if not settings.url:
            raise ValueError("the triton backend needs url (host:port of the server's gRPC endpoint)")

        def read(path: str | None) -> str | None:
            return Path(path).read_text() if path else None

        return TritonBackend(settings.url, manifest, settings.model_name, settings.model_version,
                             settings.batch_size, settings.timeout_s, settings.retries, settings.backoff_s,
                             settings.ssl, read(settings.root_certificates), read(settings.private_key),
                             read(settings.certificate_chain), settings.wait_ready_s, settings.in_flight)
    raise ValueError(f"unknown inference backend {settings.kind!r}; choose onnxruntime or triton")
