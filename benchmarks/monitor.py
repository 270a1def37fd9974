"""Monitor benchmark: one full-size Sentinel-2 product (10980 x 10980 at 10 m) through processing and
inference with the in-process ONNX Runtime backend, and the speed-up of 2 workers on 2 products.

Each stage runs in a fresh process so its peak memory (max RSS) is its own: reading and normalising the
bands (strip by strip, as the segmenter does), segmenting (tiled inference, blending, windowed writes),
and writing the COGs. Then two smaller products are segmented one after the other (1 worker) and side
by side (2 worker processes), as Luigi's workers run them. Prints a table and writes JSON.

    python benchmarks/monitor.py [--size 10980] [--pair-size 2196] [--base-width 16 --depth 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import time
from pathlib import Path

from results_file import write_results  # benchmarks/results_file.py, beside this script

from earthsignature.core.config import state_home
from earthsignature.samples.safe_writer import ProductSpec, write_product

CACHE = state_home() / "bench"


def _peak_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the address space made by exec; ru_maxrss
    would carry over the high-water mark of the process that spawned this one."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _read_stage(product: str, model_dir: str, queue) -> None:
    from earthsignature.core.manifest import ModelManifest
    from earthsignature.core.safe import SafeProduct
    from earthsignature.service.inference.product_input import ProductInput

    start = time.perf_counter()
    source = ProductInput(SafeProduct.open(product), ModelManifest.load(Path(model_dir) / "manifest.json"))
    for row in range(0, source.height, 256):
        source.strip(row, 256)
        source.cloud_mask(row, 256)
    queue.put({"seconds": time.perf_counter() - start, "peak_mb": _peak_mb()})


def _segment_stage(product: str, model_dir: str, out_dir: str, threads: int, queue) -> None:
    from earthsignature.core.safe import SafeProduct
    from earthsignature.service.inference.backends import create_backend
    from earthsignature.service.inference.product_input import ProductInput
    from earthsignature.service.inference.segmenter import segment_product

    backend = create_backend({"kind": "onnxruntime", "threads": threads, "batch_size": 8}, Path(model_dir))
    start = time.perf_counter()
    result = segment_product(ProductInput(SafeProduct.open(product), backend.manifest), backend, Path(out_dir))
    queue.put({"seconds": time.perf_counter() - start, "peak_mb": _peak_mb(), "pixels": result.height * result.width})


def _cog_stage(out_dir: str, queue) -> None:
    from earthsignature.service.monitor.publish import to_cog

    start = time.perf_counter()
    for name in ("classes", "confidence", "cloud_mask"):
        to_cog(Path(out_dir) / f"{name}.tif")
    queue.put({"seconds": time.perf_counter() - start, "peak_mb": _peak_mb()})


def in_process(target, *args) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def model(base_width: int, depth: int) -> Path:
    folder = CACHE / f"model-w{base_width}-d{depth}"
    if not (folder / "manifest.json").exists():
        # torch only here: the stage processes (spawned) must not carry it in their memory figures
        import torch

        from earthsignature.core.nomenclature import clc_level3
        from earthsignature.export.onnx_export import export_checkpoint
        from earthsignature.train.module import SegmentationModule, save_checkpoint

        torch.manual_seed(0)
        bands = ["B02", "B03", "B04", "B08"]
        module = SegmentationModule(model={"name": "unet", "base_width": base_width, "depth": depth},
                                    nomenclature_name="clc_level3", classes=clc_level3().to_records(), bands=bands,
                                    normalization={"bands": bands, "minimum": 0.0, "maximum": 10000.0,
                                                   "mean": [0.1] * 4})
        checkpoint = save_checkpoint(module, CACHE / "model.ckpt")
        export_checkpoint(checkpoint, folder, "bench-unet", 512, 64)
    return folder


def product(size: int, seed: int, tile_id: str) -> Path:
    spec = ProductSpec(tile_id=tile_id, size=size, seed=seed, cloud_cover=10, nodata_fraction=0.1, feature_size=60)
    folder = CACHE / f"products-{size}"
    path = folder / f"{spec.name}.SAFE"
    if not path.exists():
        start = time.perf_counter()
        write_product(folder, spec)
        print(f"wrote {path.name} ({size} x {size}) in {time.perf_counter() - start:.0f} s")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10980)
    parser.add_argument("--pair-size", type=int, default=2196)
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3)
    args = parser.parse_args()
    model_dir = model(args.base_width, args.depth)
    big = product(args.size, 0, "34SGH")
    out = CACHE / "out-big"
    stages = {
        "read + normalise (4 bands) + SCL": in_process(_read_stage, str(big), str(model_dir)),
        "segment (tiles, blend, write)": in_process(_segment_stage, str(big), str(model_dir), str(out), 0),
        "COGs (classes, confidence, clouds)": in_process(_cog_stage, str(out)),
    }
    megapixels = args.size**2 / 1e6
    pair = [product(args.pair_size, 1, "31TCJ"), product(args.pair_size, 2, "33UUP")]
    start = time.perf_counter()
    for k, path in enumerate(pair):
        in_process(_segment_stage, str(path), str(model_dir), str(CACHE / f"out-pair-{k}"), 2)
    sequential = time.perf_counter() - start
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start = time.perf_counter()
    processes = [context.Process(target=_segment_stage, args=(str(path), str(model_dir), str(CACHE / f"out-par-{k}"),
                                                              1, queue)) for k, path in enumerate(pair)]
    for process in processes:
        process.start()
    for _ in processes:
        queue.get()
    for process in processes:
        process.join()
    parallel = time.perf_counter() - start
    print(f"\none {args.size} x {args.size} product ({megapixels:.0f} Mpx), UNet width {args.base_width} depth "
          f"{args.depth}, tiles 512 overlap 64, ONNX Runtime on {os.cpu_count()} cores")
    print(f"{'stage':<38} {'seconds':>8} {'Mpx/s':>7} {'peak MB':>8}")
    for name, stage in stages.items():
        print(f"{name:<38} {stage['seconds']:>8.1f} {megapixels / stage['seconds']:>7.2f} {stage['peak_mb']:>8.0f}")
    print(f"\n2 products of {args.pair_size} x {args.pair_size}: 1 worker {sequential:.1f} s, "
          f"2 workers {parallel:.1f} s -> speed-up {sequential / parallel:.2f}x")
    write_results("monitor", {"args": vars(args), "stages": stages, "sequential_s": sequential,
                              "parallel_s": parallel, "speedup": sequential / parallel})


if __name__ == "__main__":
    main()
