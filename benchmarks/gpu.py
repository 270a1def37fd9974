"""The seed-size model on a GPU: ONNX Runtime's CUDA and TensorRT execution providers (float32, and float16
through TensorRT), a few batch sizes, beside the CPU provider on the same machine (float32 and int8); JPEG 2000 decoding
throughput on its cores, and on the GPU where nvImageCodec is installed. Every figure goes to
``benchmarks/results/gpu.json`` with the device named.

On a machine without an NVIDIA GPU (or without onnxruntime-gpu) the GPU rows are not measured: each is
recorded with the reason (the model service's own refusal, e.g. "this onnxruntime has no cuda
provider ..."), and the CPU rows still are. Run through ``benchmarks/gpu.sh`` (a few minutes end to end).

Triton's onnxruntime backend is not part of the server the project installs from PyPI (pytriton ships
the Python backend only), so no Triton row is measured here; see ``benchmarks/inference.py`` for Triton
with the Python backend.

    python benchmarks/gpu.py [--tile 512] [--batches 1 4 16] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
from monitor import model, product
from results_file import write_results
from seed_model import int8_model

from earthsignature.core.layout import ModelFolder
from earthsignature.core.manifest import ModelManifest

#: name -> (the model service's provider names, ONNX Runtime provider options, the export: float32 or int8)
CONTENDERS = {
    "cpu float32": (["cpu"], {}, "float32"),
    "cpu int8": (["cpu"], {}, "int8"),
    "cuda float32": (["cuda"], {}, "float32"),
    "tensorrt float32": (["tensorrt"], {}, "float32"),
    "tensorrt float16": (["tensorrt"], {"trt_fp16_enable": True}, "float32"),
}


def device_name() -> str:
    """The GPU as nvidia-smi names it, else the CPU model."""
    if shutil.which("nvidia-smi"):
        query = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                               capture_output=True, text=True, check=False)
        if query.returncode == 0 and query.stdout.strip():
            return query.stdout.strip().splitlines()[0]
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"no NVIDIA GPU; CPU {line.split(':', 1)[1].strip()} x {os.cpu_count()}"
    return "no NVIDIA GPU"


def session(model_path: Path, providers: list[str], options: dict, cache: Path):
    """An ONNX Runtime session on ``providers`` (the model service's names and checks)."""
    import onnxruntime as ort

    from earthsignature.service.inference.backends import onnxruntime_providers

    chosen = onnxruntime_providers(providers)  # raises InferenceError with the reason when absent
    if "TensorrtExecutionProvider" in chosen:
        trt = {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache), **options}
        chosen = [("TensorrtExecutionProvider", trt), *[p for p in chosen if p != "TensorrtExecutionProvider"]]
    made = ort.InferenceSession(str(model_path), providers=chosen)
    wanted = {p if isinstance(p, str) else p[0] for p in chosen} - {"CPUExecutionProvider"}
    if wanted and not wanted & set(made.get_providers()):
        raise RuntimeError(f"ONNX Runtime fell back to {made.get_providers()} (CUDA or TensorRT libraries missing)")
    return made


def tiles_per_second(run, batch: np.ndarray, seconds: float) -> float:
    run(batch)  # warm-up: TensorRT builds its engine here
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds:
        run(batch)
        calls += 1
    return len(batch) * calls / (time.perf_counter() - start)


def model_rows(folders: dict[str, ModelFolder], tile: int, batches: list[int], seconds: float) -> list[dict]:
    manifest = ModelManifest.load(folders["float32"].manifest)
    rows = []
    for name, (providers, options, precision) in CONTENDERS.items():
        folder = folders[precision]
        try:
            made = session(folder.onnx, providers, options, folder.path / "trt-cache")
        except Exception as error:  # any refusal is the figure, recorded with its reason
            rows.append({"contender": name, "refused": str(error)})
            print(f"{name:<18} not measured: {error}", flush=True)
            continue
        for size in batches:
            batch = np.random.default_rng(size).normal(0, 0.2, (size, len(manifest.bands), tile, tile))
            rate = tiles_per_second(lambda b, made=made: made.run(None, {manifest.input_name: b}),
                                    batch.astype(np.float32), seconds)
            rows.append({"contender": name, "batch": size, "tiles_per_s": rate, "mpx_per_s": rate * tile**2 / 1e6,
                         "providers": made.get_providers()})
            print(f"{name:<18} batch {size:>3}: {rate:7.2f} tiles/s, {rate * tile**2 / 1e6:7.2f} Mpx/s", flush=True)
    return rows


def jpeg2000_rows(product_path: Path) -> list[dict]:
    """Decoding the four 10 m bands of a product: GDAL (OpenJPEG) on all cores, nvImageCodec on the GPU."""
    import rasterio

    from earthsignature.core.readers import open_product

    paths = [open_product(product_path).band_path(b) for b in ("B02", "B03", "B04", "B08")]
    with rasterio.open(paths[0]) as dataset:
        megapixels = dataset.width * dataset.height * len(paths) / 1e6
    start = time.perf_counter()
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
        for path in paths:
            with rasterio.open(path) as dataset:
                dataset.read(1)
    cpu = megapixels / (time.perf_counter() - start)
    rows = [{"decoder": f"GDAL OpenJPEG, {os.cpu_count()} cores", "mpx_per_s": cpu}]
    print(f"JPEG 2000, GDAL on {os.cpu_count()} cores: {cpu:.1f} Mpx/s", flush=True)
    try:
        from nvidia import nvimgcodec  # pip install nvidia-nvimgcodec-cu12[all]
    except ImportError as error:
        rows.append({"decoder": "nvImageCodec (GPU)", "refused": f"not installed ({error})"})
        print("JPEG 2000 on the GPU: not measured, nvImageCodec is not installed", flush=True)
        return rows
    decoder = nvimgcodec.Decoder()
    decoder.read(paths[0])  # warm-up
    start = time.perf_counter()
    for path in paths:
        decoder.read(path)
    gpu = megapixels / (time.perf_counter() - start)
    rows.append({"decoder": "nvImageCodec (GPU)", "mpx_per_s": gpu})
    print(f"JPEG 2000, nvImageCodec on the GPU: {gpu:.1f} Mpx/s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per row, after a warm-up call")
    parser.add_argument("--product-size", type=int, default=2196, help="side of the product decoded")
    args = parser.parse_args()
    device = device_name()
    print(f"device: {device}", flush=True)
    float_dir = model(64, 4)
    folders = {"float32": ModelFolder(float_dir), "int8": ModelFolder(int8_model(float_dir, product(2196, 2, "33UUP")))}
    rows = model_rows(folders, args.tile, args.batches, args.seconds)
    decoding = jpeg2000_rows(product(args.product_size, 0, "34SGH"))
    measured = [r for r in rows if "refused" not in r]
    pending = sorted({r["contender"] for r in rows if "refused" in r})
    write_results("gpu", {"device": device, "args": vars(args), "model": "seed UNet, width 64, depth 4",
                          "rows": rows, "jpeg2000": decoding, "gpu_figures_pending": pending,
                          "best": max(measured, key=lambda r: r["mpx_per_s"]) if measured else None})


if __name__ == "__main__":
    main()
