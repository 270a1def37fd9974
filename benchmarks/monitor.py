"""Monitor benchmark: one full-size Sentinel-2 product (10980 x 10980 at 10 m) through reading, whole-product
segmentation and COGs with the in-process ONNX Runtime backend: the model service's segmenter side by side
with the baseline (the algorithm before, kept in benchmarks/baseline_segmenter.py), then a width-32 model
and the local Triton on a smaller product, and the speed-up of 2 workers on 2 products.

Each stage runs in a fresh process so its peak memory (VmHWM) is its own. For each implementation:
read_s (reading alone), segment_s (reading, inference, blending, writing), backend_s (wall time inside
the backend's calls), peak_mb of the segment stage, Mpx/s, the COGs, and the share of valid pixels whose
class equals the baseline's (agreement).

    python benchmarks/monitor.py [--size 10980] [--small-size 2196] [--base-width 16 --depth 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import resource
import time
from pathlib import Path

from results_file import write_results  # benchmarks/results_file.py, beside this script

from earthsignature.core.config import state_home
from earthsignature.core.settings import BackendSettings
from earthsignature.samples.safe_writer import ProductSpec, write_product

CACHE = state_home() / "bench"


def _peak_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the address space made by exec; ru_maxrss
    would carry over the high-water mark of the process that spawned this one."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _TimedBackend:
    """A backend that adds up the wall time spent inside its calls."""

    def __init__(self, backend):
        self.backend, self.manifest, self.seconds = backend, backend.manifest, 0.0
        self.batch_size, self.tiles_per_call = backend.batch_size, backend.tiles_per_call

    def predict(self, tiles):
        start = time.perf_counter()
        try:
            return self.backend.predict(tiles)
        finally:
            self.seconds += time.perf_counter() - start


def _input(implementation: str, product: str, manifest):
    from earthsignature.core.readers import open_product

    if implementation == "baseline":
        from baseline_segmenter import BaselineInput

        return BaselineInput(open_product(product), manifest)
    from earthsignature.service.inference.product_input import ProductInput

    return ProductInput(open_product(product), manifest)


def _read_stage(implementation: str, product: str, model_dir: str, queue) -> None:
    from earthsignature.core.manifest import ModelManifest

    start = time.perf_counter()
    source = _input(implementation, product, ModelManifest.load(Path(model_dir) / "manifest.json"))
    for row in range(0, source.height, 448):  # the strips a 512 px tile with 64 px overlap reads
        source.strip(row, 512)
        source.cloud_mask(row, 448)
    source.close()
    queue.put({"seconds": time.perf_counter() - start, "peak_mb": _peak_mb()})


def _segment_stage(implementation: str, product: str, model_dir: str, out_dir: str, threads: int,
                   backend_config: BackendSettings | None, queue) -> None:
    from earthsignature.service.inference.backends import create_backend

    if implementation == "baseline":
        from baseline_segmenter import segment_product
    else:
        from earthsignature.service.inference.segmenter import segment_product
    config = backend_config or BackendSettings(threads=threads)
    backend = _TimedBackend(create_backend(config, Path(model_dir)))
    start = time.perf_counter()
    source = _input(implementation, product, backend.manifest)
    result = segment_product(source, backend, Path(out_dir))
    source.close()
    queue.put({"seconds": time.perf_counter() - start, "backend_s": backend.seconds, "peak_mb": _peak_mb(),
               "pixels": result.height * result.width})


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


def agreement(first: Path, second: Path) -> float:
    """Share of pixels valid in both class maps whose class is the same."""
    import rasterio

    same = valid = 0
    with rasterio.open(first / "classes.tif") as a, rasterio.open(second / "classes.tif") as b:
        for _, window in a.block_windows(1):
            x, y = a.read(1, window=window), b.read(1, window=window)
            both = (x != 255) & (y != 255)
            same += int((x[both] == y[both]).sum())
            valid += int(both.sum())
    return same / max(valid, 1)


def measure(implementation: str, product: Path, model_dir: Path, name: str, megapixels: float,
            backend_config: BackendSettings | None = None, with_read: bool = True) -> dict:
    out = CACHE / f"out-{name}-{implementation}"
    read = in_process(_read_stage, implementation, str(product), str(model_dir)) if with_read else None
    segment = in_process(_segment_stage, implementation, str(product), str(model_dir), str(out), 0, backend_config)
    cogs = in_process(_cog_stage, str(out))
    return {"implementation": implementation, "read_s": read["seconds"] if read else None,
            "read_peak_mb": read["peak_mb"] if read else None, "segment_s": segment["seconds"],
            "backend_s": segment["backend_s"], "backend_share": segment["backend_s"] / segment["seconds"],
            "peak_mb": segment["peak_mb"], "cog_s": cogs["seconds"],
            "whole_s": segment["seconds"] + cogs["seconds"], "mpx_per_s": megapixels / segment["seconds"],
            "out": str(out)}


def compare(product: Path, model_dir: Path, name: str, size: int, backend_config=None, implementations=None,
            baseline_model: Path | None = None) -> list[dict]:
    rows = []
    for implementation in implementations or ("baseline", "model service"):
        model = baseline_model if implementation == "baseline" and baseline_model else model_dir
        rows.append({"case": name, **measure(implementation, product, model, name, size**2 / 1e6, backend_config,
                                             with_read=backend_config is None)})
    reference = next((r for r in rows if r["implementation"] == "baseline"), None)
    for row in rows:
        row["agreement"] = agreement(Path(reference["out"]), Path(row["out"])) if reference else None
        row["speedup_vs_baseline"] = reference["whole_s"] / row["whole_s"] if reference else None
    return rows


def main() -> None:
    from baseline_segmenter import logits_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10980)
    parser.add_argument("--small-size", type=int, default=2196)
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--skip-triton", action="store_true")
    args = parser.parse_args()
    model_dir = model(args.base_width, args.depth)
    baseline_model = logits_model(model_dir, CACHE / f"{model_dir.name}-logits")
    big, small = product(args.size, 0, "34SGH"), product(args.small_size, 1, "31TCJ")
    rows = compare(big, model_dir, f"{args.size} px, width {args.base_width}", args.size,
                   baseline_model=baseline_model)
    wide = model(32, 4)
    rows += compare(small, wide, f"{args.small_size} px, width 32 depth 4", args.small_size,
                    baseline_model=logits_model(wide, CACHE / f"{wide.name}-logits"))
    if not args.skip_triton:
        rows += triton_rows(small, model_dir, baseline_model, args.small_size)
    pair = [product(args.small_size, 1, "31TCJ"), product(args.small_size, 2, "33UUP")]
    sequential, parallel = workers(pair, model_dir)
    print(f"\nUNet width {args.base_width} depth {args.depth} (44 classes), tiles 512 overlap 64, "
          f"{os.cpu_count()} cores")
    print(f"{'case':<30} {'implementation':<14} {'read s':>7} {'segment s':>9} {'backend':>8} {'peak MB':>8} "
          f"{'Mpx/s':>6} {'whole s':>8} {'speed-up':>8} {'agreement':>9}")
    for r in rows:
        read = f"{r['read_s']:.1f}" if r["read_s"] is not None else "-"
        print(f"{r['case']:<30} {r['implementation']:<14} {read:>7} {r['segment_s']:>9.1f} "
              f"{r['backend_share']:>7.0%} {r['peak_mb']:>8.0f} {r['mpx_per_s']:>6.2f} {r['whole_s']:>8.1f} "
              f"{r['speedup_vs_baseline']:>7.2f}x {r['agreement']:>9.4f}")
    print(f"\n2 products of {args.small_size} x {args.small_size}: 1 worker {sequential:.1f} s, "
          f"2 workers {parallel:.1f} s -> speed-up {sequential / parallel:.2f}x")
    write_results("monitor", {"args": vars(args), "rows": rows, "sequential_s": sequential,
                              "parallel_s": parallel, "speedup": sequential / parallel})


def triton_rows(product: Path, model_dir: Path, baseline_model: Path, size: int) -> list[dict]:
    """The same comparison through the local Triton (Python backend running ONNX Runtime, CPU)."""
    import shutil

    from earthsignature.core.manifest import ModelManifest
    from earthsignature.embedded.triton import LocalTritonServer
    from earthsignature.export.triton_repository import ServingOptions, write_model

    repository = CACHE / "triton-repository"
    shutil.rmtree(repository, ignore_errors=True)
    for folder in (model_dir, baseline_model):
        manifest = ModelManifest.load(folder / "manifest.json")
        manifest = dataclasses.replace(manifest, name=f"bench-{folder.name}").with_version("1")
        write_model(repository, folder / "model.onnx", manifest, ServingOptions(backend="python"))
    with LocalTritonServer(repository) as server:
        config = BackendSettings(kind="triton", url=server.grpc_url, wait_ready_s=60)
        rows = []
        for implementation, folder in (("baseline", baseline_model), ("model service", model_dir)):
            served = repository / f"bench-{folder.name}" / "1"
            rows += [{"case": f"{size} px, Triton", **measure(implementation, product, served, "triton",
                                                              size**2 / 1e6, config, with_read=False)}]
    reference = rows[0]
    for row in rows:
        row["agreement"] = agreement(Path(reference["out"]), Path(row["out"]))
        row["speedup_vs_baseline"] = reference["whole_s"] / row["whole_s"]
    return rows


def workers(pair: list[Path], model_dir: Path) -> tuple[float, float]:
    """Two products one after the other (1 worker, 2 threads) and side by side (2 processes, 1 thread)."""
    start = time.perf_counter()
    for k, path in enumerate(pair):
        in_process(_segment_stage, "model service", str(path), str(model_dir), str(CACHE / f"out-pair-{k}"), 2, None)
    sequential = time.perf_counter() - start
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start = time.perf_counter()
    processes = [context.Process(target=_segment_stage, args=("model service", str(path), str(model_dir),
                                                              str(CACHE / f"out-par-{k}"), 1, None, queue))
                 for k, path in enumerate(pair)]
    for process in processes:
        process.start()
    for _ in processes:
        queue.get()
    for process in processes:
        process.join()
    return sequential, time.perf_counter() - start


if __name__ == "__main__":
    main()
