"""Inference speed: PyTorch eager, ONNX Runtime in-process and Triton (gRPC, Python backend running
ONNX Runtime) on the same model and the same tiles, at several batch sizes, in one run.

Also the model's FLOPs per megapixel (counted by torch.utils.flop_counter on one tile) and the share of
this machine's float32 matrix-multiply rate (a 2048^3 matmul, measured in the same run) that each
backend achieves. Prints a table and writes JSON next to this script.

    python benchmarks/inference.py [--base-width 32] [--depth 4] [--tile 128] [--batches 1 8 32]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from results_file import write_results  # benchmarks/results_file.py, beside this script
from torch.utils.flop_counter import FlopCounterMode

from earthsignature.core.nomenclature import clc_level3
from earthsignature.embedded.triton import LocalTritonServer
from earthsignature.export.onnx_export import export_checkpoint
from earthsignature.export.triton_repository import ServingOptions, write_model
from earthsignature.service.inference.backends import OnnxRuntimeBackend, TritonBackend
from earthsignature.train.module import SegmentationModule, save_checkpoint


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def tiles_per_second(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, min_seconds: float = 2.0) -> float:
    run(batch)  # warm-up
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < min_seconds:
        run(batch)
        calls += 1
    return len(batch) * calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="earthsignature-bench-"))
    try:
        run_benchmark(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_benchmark(args: argparse.Namespace, work: Path) -> None:
    torch.manual_seed(0)
    bands = ["B02", "B03", "B04", "B08"]
    untrained = SegmentationModule(
        model={"name": "unet", "base_width": args.base_width, "depth": args.depth},
        nomenclature_name="clc_level3", classes=clc_level3().to_records(), bands=bands,
        normalization={"bands": bands, "minimum": 0.0, "maximum": 10000.0, "mean": [0.1] * 4})
    checkpoint = save_checkpoint(untrained, work / "model.ckpt")  # speed does not depend on the weights
    onnx_path, manifest, _ = export_checkpoint(checkpoint, work / "export", "bench-unet", args.tile, 0)
    manifest = manifest.with_version("1")
    network = SegmentationModule.load_from_checkpoint(checkpoint, map_location="cpu").model.eval()
    with FlopCounterMode(display=False) as counter:
        network(torch.zeros(1, 4, args.tile, args.tile))
    flops_per_tile = counter.get_total_flops()
    megapixels_per_tile = args.tile**2 / 1e6
    peak = matmul_gflops()
    ort_backend = OnnxRuntimeBackend(onnx_path, manifest, batch_size=max(args.batches))
    write_model(work / "repository", onnx_path, manifest,
                ServingOptions(backend="python", max_batch_size=max(args.batches), preferred_batch_sizes=()))

    def eager(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return network(torch.from_numpy(batch)).numpy()

    rows = []
    with LocalTritonServer(work / "repository") as server:
        triton_backend = TritonBackend(server.grpc_url, manifest, batch_size=max(args.batches), wait_ready_s=60)
        contenders = {"pytorch-eager": eager, "onnxruntime": ort_backend.predict, "triton": triton_backend.predict}
        for batch_size in args.batches:
            batch = np.random.default_rng(batch_size).normal(size=(batch_size, 4, args.tile, args.tile))
            batch = batch.astype(np.float32)
            baseline = None
            for name, run in contenders.items():
                rate = tiles_per_second(run, batch)
                baseline = baseline or rate
                rows.append({"backend": name, "batch": batch_size, "tiles_per_s": rate,
                             "megapixels_per_s": rate * megapixels_per_tile, "ratio_to_eager": rate / baseline,
                             "share_of_matmul_rate": rate * flops_per_tile / (peak * 1e9)})
        triton_backend.close()
    print(f"\ninference, UNet width {args.base_width} depth {args.depth}, {args.tile} x {args.tile} tiles, "
          f"{torch.get_num_threads()} threads; {flops_per_tile / megapixels_per_tile / 1e9:.1f} GFLOP per "
          f"megapixel; matmul {peak:.1f} GFLOP/s")
    print(f"{'backend':<14} {'batch':>5} {'tiles/s':>9} {'MPix/s':>8} {'vs eager':>9} {'of matmul':>10}")
    for row in rows:
        print(f"{row['backend']:<14} {row['batch']:>5} {row['tiles_per_s']:>9.2f} {row['megapixels_per_s']:>8.3f} "
              f"{row['ratio_to_eager']:>8.2f}x {row['share_of_matmul_rate']:>9.1%}")
    write_results("inference", {"args": vars(args), "flops_per_tile": flops_per_tile,
                                "gflop_per_megapixel": flops_per_tile / megapixels_per_tile / 1e9,
                                "matmul_gflops": peak, "rows": rows})


if __name__ == "__main__":
    main()
