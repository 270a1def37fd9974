"""``earthsignature export`` and ``model``: ONNX export, the MLflow registry, Triton deployment, inference."""

from __future__ import annotations

from pathlib import Path

import click

from earthsignature.core.config import load_config, state_home
from earthsignature.core.manifest import DEFAULT_OVERLAP, DEFAULT_TILE_SIZE, INT8_MIN_AGREEMENT
from earthsignature.core.settings import BackendSettings


def _tracking_uri(explicit: str | None) -> str:
    """--tracking-uri, else the training logger's (conf/logger/mlflow.yaml)."""
    return explicit or str(load_config("logger", "mlflow").tracking_uri)


_tracking_option = click.option("--tracking-uri", default=None,
                                help="MLflow tracking URI (default: conf/logger/mlflow.yaml)")


def _registry(tracking_uri: str | None):
    from earthsignature.export.registry import ModelRegistry

    logger = load_config("logger", "mlflow")
    return ModelRegistry(_tracking_uri(tracking_uri), artifact_root=str(logger.artifact_location))


def _checkpoint_from(source: str, tracking_uri: str | None) -> Path:
    """A checkpoint path, or ``runs:/RUN_ID`` (the best checkpoint a training run logged)."""
    if not source.startswith("runs:/"):
        return Path(source)
    import mlflow

    mlflow.set_tracking_uri(_tracking_uri(tracking_uri))
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=source))
    candidates = sorted(folder.rglob("best-*.ckpt")) or sorted(folder.rglob("*.ckpt"))
    if not candidates:
        raise click.ClickException(f"{source} holds no checkpoint")
    return candidates[0]


@click.command("export")
@click.argument("source")
@click.option("--name", required=True, help="registered model name, e.g. clc-unet")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="folder for model.onnx + manifest.json (default: var/exports/NAME)")
@click.option("--tile-size", type=int, default=DEFAULT_TILE_SIZE, show_default=True, help="recommended inference tile")
@click.option("--overlap", type=int, default=DEFAULT_OVERLAP, show_default=True, help="recommended tile overlap")
@click.option("--tolerance", type=float, default=1e-3, show_default=True, help="max |probability diff| vs PyTorch")
@click.option("--float16-output", is_flag=True, help="probabilities as float16 (half the bytes from a Triton server)")
@click.option("--int8", is_flag=True, help="quantize to int8 for CPUs (needs --calibration products)")
@click.option("--calibration", type=click.Path(exists=True, path_type=Path), multiple=True,
              help="a Sentinel-2 L2A product (SAFE folder, STAC item) whose tiles calibrate --int8; repeatable")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=INT8_MIN_AGREEMENT, show_default=True,
              help="--int8 is refused below this share of held-out pixels classified as the float model does")
@click.option("--register/--no-register", default=True, show_default=True,
              help="register the export as a new version in the MLflow registry")
@_tracking_option
def export_command(source: str, name: str, out: Path | None, tile_size: int, overlap: int, tolerance: float,
                   float16_output: bool, int8: bool, calibration: tuple[Path, ...], min_agreement: float,
                   register: bool, tracking_uri: str | None) -> None:
    """Export a checkpoint (path or runs:/RUN_ID) to ONNX + manifest, verify parity, register it."""
    from earthsignature.core.product import ProductError
    from earthsignature.export.onnx_export import ExportError
    from earthsignature.export.release import Int8Request, export_and_register

    if int8 and not calibration:
        raise click.UsageError("--int8 needs --calibration: products whose tiles calibrate and check the model")
    if calibration and not int8:
        raise click.UsageError("--calibration is for --int8 exports")
    out = out or state_home() / "exports" / name
    registry = _registry(tracking_uri) if register else None
    request = Int8Request(calibration, min_agreement) if int8 else None
    try:
        folder, manifest, report = export_and_register(_checkpoint_from(source, tracking_uri), out, name, registry,
                                                       tile_size, overlap, tolerance, float16_output, request)
    except (ExportError, ProductError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{folder.onnx}  max |probability diff| {report.max_abs_diff:.2e}, "
               f"argmax agreement {report.argmax_agreement:.5f} on {len(report.shapes)} input sizes")
    if manifest.quantization is not None:
        quantization = manifest.quantization
        click.echo(f"int8: argmax agreement with the float model {quantization.argmax_agreement:.4f} on "
                   f"{quantization.parity_tiles} held-out tiles (calibrated on {quantization.calibration_tiles})")
    if register:
        click.echo(f"registered {manifest.name} version {manifest.version}")


@click.group()
def model() -> None:
    """Registered models: list, promote, deploy to a Triton repository, predict, serve."""


@model.command("list")
@click.argument("name", required=False)
@_tracking_option
def model_list(name: str | None, tracking_uri: str | None) -> None:
    """Versions with their aliases and metrics."""
    from earthsignature.export.registry import RegistryError

    try:
        versions = _registry(tracking_uri).versions(name)
    except RegistryError as error:
        raise click.ClickException(str(error)) from error
    for info in versions:
        aliases = " ".join(f"@{a}" for a in info.aliases) or "-"
        shown = sorted((k, v) for k, v in info.metrics.items() if k.startswith(("test_", "parity")))
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in shown)
        click.echo(f"{info.name:<24} v{info.version:<4} {aliases:<16} {metrics}")


@model.command("promote")
@click.argument("name")
@click.argument("version")
@click.option("--alias", default="champion", show_default=True)
@click.option("--require", multiple=True, help="a further gate such as test_miou>=0.5 (repeatable)")
@click.option("--ignore-gate", is_flag=True, help="promote although the experiment's declared gate does not hold")
@_tracking_option
def model_promote(name: str, version: str, alias: str, require: tuple[str, ...], ignore_gate: bool,
                  tracking_uri: str | None) -> None:
    """Move ALIAS to VERSION of NAME, if the gate its experiment declared (``promotion`` in its config: test
    metric minimums, beating @champion) holds and every --require gate too; otherwise say why not."""
    from earthsignature.export.registry import RegistryError

    if ignore_gate:
        click.echo("promoting without the experiment's gate (--ignore-gate)", err=True)
    try:
        info = _registry(tracking_uri).promote(name, version, alias, list(require), gate=not ignore_gate)
    except RegistryError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{name} @{alias} -> version {info.version}")


@model.command("deploy")
@click.argument("reference")
@click.option("--repository", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--backend", type=click.Choice(["onnxruntime", "python"]), default="onnxruntime", show_default=True,
              help="python: a model.py running ONNX Runtime, for servers without the onnxruntime backend")
@click.option("--instance-kind", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True)
@click.option("--instances", type=int, default=1, show_default=True)
@click.option("--max-batch-size", type=int, default=32, show_default=True)
@click.option("--preferred-batch-size", "preferred", type=int, multiple=True, default=(8, 16), show_default=True)
@click.option("--queue-delay-us", type=int, default=500, show_default=True)
@click.option("--num-versions", type=int, default=2, show_default=True, help="versions kept loaded")
@_tracking_option
def model_deploy(reference: str, repository: Path, backend: str, instance_kind: str, instances: int,
                 max_batch_size: int, preferred: tuple[int, ...], queue_delay_us: int, num_versions: int,
                 tracking_uri: str | None) -> None:
    """Write REFERENCE (NAME@alias or NAME/VERSION) into a Triton model repository."""
    from earthsignature.export.registry import RegistryError
    from earthsignature.export.release import deploy
    from earthsignature.export.triton_repository import ServingOptions

    try:
        options = ServingOptions(backend, max_batch_size, tuple(preferred), queue_delay_us, instance_kind,
                                 instances, num_versions)
        folder = deploy(_registry(tracking_uri), reference, repository, options)
    except (RegistryError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{folder}")


@model.command("predict")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--backend", type=click.Choice(["onnxruntime", "triton"]), default="onnxruntime", show_default=True)
@click.option("--url", default="127.0.0.1:8001", show_default=True, help="Triton gRPC address")
@click.option("--batch-size", type=int, default=BackendSettings.batch_size, show_default=True, help="tiles per call")
@click.option("--offset", type=int, default=None,
              help="added to the digital numbers: -1000 for raw products of processing baseline 04.00 and later, 0 "
                   "for older or harmonised ones (default: from the image's tags, else 0 with a warning)")
def model_predict(model_dir: Path, image: Path, output: Path, backend: str, url: str, batch_size: int,
                  offset: int | None) -> None:
    """Segment a GeoTIFF of the model's bands (digital numbers) into a class-map GeoTIFF.

    MODEL_DIR holds model.onnx and manifest.json (an export folder, or a Triton version folder).
    """
    from earthsignature.service.inference.backends import InferenceError, create_backend
    from earthsignature.service.inference.predict import predict_geotiff

    settings = BackendSettings(kind=backend, url=url, batch_size=batch_size, wait_ready_s=30)
    try:
        histogram = predict_geotiff(create_backend(settings, model_dir), image, output, offset)
    except (InferenceError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    for name, fraction in histogram.items():
        click.echo(f"{fraction:7.2%}  {name}")
    click.echo(str(output))


@model.command("serve-triton")
@click.option("--repository", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
def model_serve_triton(repository: Path) -> None:
    """Run the local Triton server (installed by `make setup`) on REPOSITORY until interrupted."""
    import signal
    import time

    from earthsignature.embedded.triton import LocalTritonServer, TritonUnavailable

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGTERM (kill, systemd) must unwind like Ctrl-C, or the server outlives this command
    signal.signal(signal.SIGTERM, interrupt)
    try:
        with LocalTritonServer(repository.resolve()) as server:
            click.echo(f"Triton gRPC on {server.grpc_url}, HTTP on 127.0.0.1:{server.http_port} "
                       f"(polling {repository} every second); Ctrl-C stops it")
            while server.process.poll() is None:
                time.sleep(1)
    except TritonUnavailable as error:
        raise click.ClickException(str(error)) from error
    except KeyboardInterrupt:
        pass
