"""Both inference backends on the same inputs, against a real Triton server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton

from earthsignature.core.settings import BackendSettings
from earthsignature.embedded.ports import free_port
from earthsignature.embedded.triton import LocalTritonServer
from earthsignature.export.onnx_export import export_checkpoint
from earthsignature.export.triton_repository import ServingOptions, write_model
from earthsignature.service.inference.backends import (
    InferenceError,
    ModelNotReadyError,
    OnnxRuntimeBackend,
    TritonBackend,
    create_backend,
)

OPTIONS = ServingOptions(backend="python", max_batch_size=8, preferred_batch_sizes=(2, 4))


@pytest.fixture(scope="module")
def models(tiny_checkpoints, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("models")
    exported = []
    for number, checkpoint in enumerate(tiny_checkpoints, start=1):
        onnx_path, manifest, _ = export_checkpoint(checkpoint, tmp / f"v{number}", "clc-tiny")
        exported.append((onnx_path, manifest.with_version(str(number))))
    return exported


@pytest.fixture(scope="module")
def server(models, tmp_path_factory: pytest.TempPathFactory):
    repository = tmp_path_factory.mktemp("repository")
    onnx_path, manifest = models[0]
    write_model(repository, onnx_path, manifest, OPTIONS)
    with LocalTritonServer(repository, poll_seconds=1) as running:
        yield running, repository


def tiles(n: int, seed: int = 0, size: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4, size, size)).astype(np.float32)


def test_onnxruntime_batches_any_number_of_tiles(models) -> None:
    onnx_path, manifest = models[0]
    x = tiles(5)
    whole = OnnxRuntimeBackend(onnx_path, manifest, batch_size=8).predict(x)
    in_pieces = OnnxRuntimeBackend(onnx_path, manifest, batch_size=2, threads=1).predict(x)
    assert whole.shape == (5, 44, 40, 40)
    np.testing.assert_allclose(in_pieces, whole, atol=1e-5)


def test_triton_answers_like_onnxruntime(models, server) -> None:
    running, _ = server
    onnx_path, manifest = models[0]
    x = tiles(7, seed=1, size=48)
    local = OnnxRuntimeBackend(onnx_path, manifest).predict(x)
    remote = TritonBackend(running.grpc_url, manifest, batch_size=3, wait_ready_s=30).predict(x)
    np.testing.assert_allclose(remote, local, atol=1e-5)
    several = TritonBackend(running.grpc_url, manifest, batch_size=2, wait_ready_s=30, in_flight=3)
    assert several.tiles_per_call == 6
    np.testing.assert_allclose(several.predict(x), local, atol=1e-5)  # 4 requests, 3 in flight, in order
    several.close()


def test_readiness_and_metadata(models, server) -> None:
    running, _ = server
    client = triton.InferenceServerClient(running.grpc_url)
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_model_metadata("clc-tiny", "1")
    assert [(i.name, i.datatype, list(i.shape)) for i in metadata.inputs] == [("image", "FP32", [-1, 4, -1, -1])]
    assert [(o.name, list(o.shape)) for o in metadata.outputs] == [("probabilities", [-1, 44, -1, -1])]
    config = client.get_model_config("clc-tiny").config
    assert config.max_batch_size == 8 and list(config.dynamic_batching.preferred_batch_size) == [2, 4]
    client.close()


def test_a_new_version_is_served_without_restart(models, server) -> None:
    running, repository = server
    (first_onnx, first), (second_onnx, second) = models
    write_model(repository, second_onnx, second, OPTIONS)  # the server polls the repository
    client = triton.InferenceServerClient(running.grpc_url)
    deadline = time.monotonic() + 60
    while not client.is_model_ready("clc-tiny", "2") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert client.is_model_ready("clc-tiny", "2"), running.log_tail()
    assert client.is_model_ready("clc-tiny", "1")  # num_versions=2 keeps the previous one
    x = tiles(2, seed=3)
    served_second = TritonBackend(running.grpc_url, second, model_version="2").predict(x)
    np.testing.assert_allclose(served_second, OnnxRuntimeBackend(second_onnx, second).predict(x), atol=1e-5)
    assert not np.allclose(served_second, OnnxRuntimeBackend(first_onnx, first).predict(x), atol=1e-3)
    client.close()


def test_errors_are_clear(models, server) -> None:
    running, _ = server
    onnx_path, manifest = models[0]
    with pytest.raises(InferenceError, match=r"takes 4 bands \(B02, B03, B04, B08\); the tiles have 3"):
        OnnxRuntimeBackend(onnx_path, manifest).predict(tiles(1)[:, :3])
    with pytest.raises(InferenceError, match=r"takes 4 bands"):
        TritonBackend(running.grpc_url, manifest).predict(tiles(1)[:, :3])
    with pytest.raises(InferenceError, match=r"must be \[N, bands, H, W\]"):
        OnnxRuntimeBackend(onnx_path, manifest).predict(tiles(1)[0])
    with pytest.raises(ModelNotReadyError, match="model lulc-unet version 1 is not ready"):
        TritonBackend(running.grpc_url, manifest, model_name="lulc-unet")  # version: the manifest's
    with pytest.raises(ModelNotReadyError, match="model clc-tiny version 9 is not ready"):
        TritonBackend(running.grpc_url, manifest, model_version="9")
    nobody = f"127.0.0.1:{free_port()}"
    with pytest.raises(ModelNotReadyError, match=f"Triton at {nobody}: model clc-tiny .* cannot be asked"):
        TritonBackend(nobody, manifest, timeout_s=2)


def test_backend_selection_by_config(models, server) -> None:
    running, repository = server
    version_dir = repository / "clc-tiny" / "1"
    local = create_backend(BackendSettings(threads=1), version_dir)
    remote = create_backend(BackendSettings(kind="triton", url=running.grpc_url, wait_ready_s=10), version_dir)
    assert isinstance(local, OnnxRuntimeBackend) and isinstance(remote, TritonBackend)
    assert remote.model_version == "1"  # the manifest's version
    with pytest.raises(ValueError, match="unknown inference backend 'tensorrt'"):
        create_backend(BackendSettings(kind="tensorrt"), version_dir)


def test_cli_predict_through_both_backends(models, server, tmp_path: Path) -> None:
    import rasterio
    from click.testing import CliRunner

    from earthsignature.cli import main
    from earthsignature.core.nomenclature import hrl
    from earthsignature.samples.pairs_writer import write_image_mask_pairs

    running, repository = server
    write_image_mask_pairs(tmp_path / "set", hrl(), n_samples=1, size=64)
    image = next((tmp_path / "set" / "images").glob("*.tif"))
    version_dir = str(repository / "clc-tiny" / "1")
    maps = []
    for backend in ("onnxruntime", "triton"):
        out = tmp_path / f"{backend}.tif"
        result = CliRunner().invoke(main, ["model", "predict", version_dir, str(image), str(out),
                                           "--backend", backend, "--url", running.grpc_url])
        assert result.exit_code == 0, result.output
        with rasterio.open(out) as dataset:
            maps.append(dataset.read(1))
            assert dataset.colormap(1)[23] == (0, 166, 0, 255)  # CLC 312 coniferous green
    assert np.array_equal(maps[0], maps[1])


def test_execution_providers_come_from_the_settings(models) -> None:
    from earthsignature.service.inference.backends import InferenceError, onnxruntime_providers

    assert onnxruntime_providers(["cpu"]) == ["CPUExecutionProvider"]
    with pytest.raises(InferenceError, match="unknown execution provider 'npu'"):
        onnxruntime_providers(["npu"])
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():  # CI has no GPU: a clear refusal
        with pytest.raises(InferenceError, match=r"no cuda provider .* install onnxruntime-gpu"):
            onnxruntime_providers(["cuda"])


def test_float16_probabilities_cross_the_wire_at_half_the_bytes(tiny_checkpoints, models, server, tmp_path) -> None:
    running, repository = server
    onnx_path, manifest, report = export_checkpoint(tiny_checkpoints[0], tmp_path / "f16", "clc-tiny-f16",
                                                    float16_output=True)
    assert manifest.output_dtype == "float16" and report.argmax_agreement > 0.999
    manifest = manifest.with_version("1")
    write_model(repository, onnx_path, manifest, OPTIONS)  # the server polls the repository
    client = triton.InferenceServerClient(running.grpc_url)
    deadline = time.monotonic() + 60
    while not client.is_model_ready("clc-tiny-f16", "1") and time.monotonic() < deadline:
        time.sleep(0.5)
    client.close()
    x = tiles(3, seed=5)
    full = OnnxRuntimeBackend(*models[0]).predict(x)  # the same checkpoint, float32 probabilities
    local = OnnxRuntimeBackend(onnx_path, manifest).predict(x)
    remote = TritonBackend(running.grpc_url, manifest, wait_ready_s=30).predict(x)
    assert local.dtype == remote.dtype == np.float16 and local.nbytes * 2 == full.nbytes
    np.testing.assert_allclose(remote.astype(np.float32), full, atol=2e-3)
    np.testing.assert_allclose(remote.astype(np.float32), local.astype(np.float32), atol=1e-3)


def test_an_int8_model_is_served_like_it_runs_in_process(models, server, tmp_path) -> None:
    from earthsignature.export.quantize import ProductTiles, quantize_export

    running, repository = server
    onnx_path, _ = models[0]
    calibration = ProductTiles(tiles(4, seed=7), tiles(2, seed=8), np.ones((2, 40, 40), bool), ("random",))
    folder, int8 = quantize_export(onnx_path.parent, calibration, tmp_path / "int8", min_agreement=0.0)
    served = dataclasses.replace(int8, name="clc-tiny-int8").with_version("1")
    write_model(repository, folder.onnx, served, OPTIONS)  # the server polls the repository
    x = tiles(3, seed=9)
    remote = TritonBackend(running.grpc_url, served, wait_ready_s=60).predict(x)
    np.testing.assert_allclose(remote, OnnxRuntimeBackend(folder.onnx, int8).predict(x), atol=1e-6)
    assert int8.precision == "int8" and not np.allclose(remote, OnnxRuntimeBackend(*models[0]).predict(x), atol=1e-6)
