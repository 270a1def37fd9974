"""The ``earthsignature`` command: the one place that knows every part of the project.

Each capability adds its own subcommands here; ``earthsignature --help`` lists what exists.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from earthsignature.config import PROJECT_ROOT, load_config
from earthsignature.data.nomenclature import NOMENCLATURE_NAMES, UnknownClassError, get_nomenclature


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """EarthSignature: Sentinel-2 land-cover segmentation toolkit and services."""


# --- db ---------------------------------------------------------------------------------------------


def _service_config(config: str, overrides: tuple[str, ...]):
    return load_config("service", config, overrides)


def _cluster(config: str, overrides: tuple[str, ...]):
    from earthsignature.service.database.cluster import cluster_from_config

    cfg = _service_config(config, overrides)
    if cfg.db.url:
        raise click.ClickException(f"db.url is set ({cfg.db.url}): that database is not ours to manage")
    return cfg, cluster_from_config(cfg.db, PROJECT_ROOT)


_config_option = click.option("-c", "--config", default="embedded", show_default=True,
                              help="service config in conf/service/")
_overrides_argument = click.argument("overrides", nargs=-1)


@main.group()
def db() -> None:
    """The private PostGIS cluster (embedded default database). OVERRIDES: e.g. db.port=5544."""


@db.command("up")
@_config_option
@_overrides_argument
def db_up(config: str, overrides: tuple[str, ...]) -> None:
    """Initialise, start and create the database with PostGIS (idempotent); print its URL."""
    from earthsignature.service.database.cluster import ClusterError

    cfg, cluster = _cluster(config, overrides)
    try:
        click.echo(cluster.up(cfg.db.name))
    except ClusterError as error:
        raise click.ClickException(str(error)) from error


@db.command("down")
@_config_option
@_overrides_argument
def db_down(config: str, overrides: tuple[str, ...]) -> None:
    """Stop the cluster (its data stays)."""
    _, cluster = _cluster(config, overrides)
    cluster.down()
    click.echo(f"stopped ({cluster.data_dir})")


@db.command("status")
@_config_option
@_overrides_argument
def db_status(config: str, overrides: tuple[str, ...]) -> None:
    """Say whether the cluster runs; exit 3 when it does not (like pg_ctl status)."""
    cfg, cluster = _cluster(config, overrides)
    if not cluster.initialized:
        click.echo(f"not initialised ({cluster.data_dir})")
        sys.exit(3)
    if not cluster.is_running():
        click.echo(f"stopped ({cluster.data_dir})")
        sys.exit(3)
    click.echo(f"running on {cluster.host}:{cluster.port} ({cluster.data_dir}): {cluster.url(cfg.db.name)}")


@db.command("url")
@_config_option
@_overrides_argument
def db_url(config: str, overrides: tuple[str, ...]) -> None:
    """Print the SQLAlchemy URL of the catalog database."""
    cfg = _service_config(config, overrides)
    if cfg.db.url:
        click.echo(cfg.db.url)
        return
    _, cluster = _cluster(config, overrides)
    click.echo(cluster.url(cfg.db.name))


@db.command("migrate")
@_config_option
@_overrides_argument
def db_migrate(config: str, overrides: tuple[str, ...]) -> None:
    """Create or upgrade the catalog schema (Alembic) in db.url or the private cluster."""
    from earthsignature.service.database.schema import upgrade

    cfg = _service_config(config, overrides)
    url = cfg.db.url or _cluster(config, overrides)[1].up(cfg.db.name)
    click.echo(f"catalog schema at revision {upgrade(url)}")


# --- nomenclatures ----------------------------------------------------------------------------------


@main.command()
@click.argument("nomenclature", default="clc_level3", type=click.Choice(NOMENCLATURE_NAMES))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--lookup", help="show only the class with this code or name")
def classes(nomenclature: str, fmt: str, lookup: str | None) -> None:
    """List the classes of a nomenclature (code, name, color, the CLC codes each covers)."""
    nom = get_nomenclature(nomenclature)
    try:
        selected = [nom.lookup(lookup)] if lookup else list(nom)
    except UnknownClassError as error:
        raise click.ClickException(str(error)) from error
    if fmt == "json":
        chosen = {s.index for s in selected}
        records = [{**c, "clc_codes": list(nom.by_index(c["index"]).clc_codes)}
                   for c in nom.to_dict() if c["index"] in chosen]
        click.echo(json.dumps(records, indent=1))
        return
    for cls in selected:
        covers = "" if cls.clc_codes == (cls.code,) else f"  <- CLC {', '.join(map(str, cls.clc_codes))}"
        click.echo(f"{cls.index:3d}  {cls.code:>5}  {cls.hex_color}  {cls.name}{covers}")


# --- fixtures ---------------------------------------------------------------------------------------


@main.group()
def fixtures() -> None:
    """Write sample data in the real on-disk formats (SAFE products, BigEarthNet v2, image/mask pairs)."""


@fixtures.command("safe")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--tile", "tiles", multiple=True, default=["34SGH"], show_default=True, help="MGRS tile id")
@click.option("--date", "date", default="2021-08-01T09:20:31", show_default=True, help="sensing time (UTC)")
@click.option("--level", type=click.Choice(["L2A", "L1C"]), default="L2A", show_default=True)
@click.option("--size", type=int, default=1098, show_default=True, help="pixels at 10 m (multiple of 6)")
@click.option("--cloud-cover", type=float, default=5.0, show_default=True, help="percent")
@click.option("--nodata-fraction", type=float, default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--zip", "zipped", is_flag=True, help="write <name>.zip instead of <name>.SAFE")
def fixtures_safe(out: Path, tiles: tuple[str, ...], date: str, level: str, size: int, cloud_cover: float,
                  nodata_fraction: float, seed: int, zipped: bool) -> None:
    """Write one Sentinel-2 product per --tile into OUT."""
    from earthsignature.data.fixtures.safe_writer import ProductSpec, write_product

    sensing = datetime.fromisoformat(date).replace(tzinfo=UTC)
    for k, tile_id in enumerate(tiles):
        try:
            spec = ProductSpec(tile_id=tile_id, sensing_time=sensing, level=level, size=size,
                               cloud_cover=cloud_cover, nodata_fraction=nodata_fraction, seed=seed + k)
        except ValueError as error:
            raise click.BadParameter(str(error)) from error
        click.echo(write_product(out, spec, zipped=zipped))


@fixtures.command("bigearthnet")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--patches-per-tile", type=int, default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def fixtures_bigearthnet(out: Path, patches_per_tile: int, seed: int) -> None:
    """Write a BigEarthNet v2 folder (S2, S1, reference maps, metadata.parquet) into OUT."""
    from earthsignature.data.fixtures.bigearthnet_writer import write_bigearthnet_v2

    metadata = write_bigearthnet_v2(out, patches_per_tile=patches_per_tile, seed=seed)
    click.echo(f"{len(metadata)} patches in {out}: {metadata['split'].value_counts().to_dict()}")


@fixtures.command("pairs")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--nomenclature", type=click.Choice(NOMENCLATURE_NAMES), required=True)
@click.option("--samples", type=int, default=12, show_default=True)
@click.option("--size", type=int, default=120, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def fixtures_pairs(out: Path, nomenclature: str, samples: int, size: int, seed: int) -> None:
    """Write an image/mask GeoTIFF pair set (HRL, Urban Atlas, burnt areas, pilot) into OUT."""
    from earthsignature.data.fixtures.pairs_writer import write_image_mask_pairs

    splits = write_image_mask_pairs(out, get_nomenclature(nomenclature), samples, size, seed=seed)
    click.echo(f"{len(splits)} pairs in {out}: {splits['split'].value_counts().to_dict()}")


# --- training toolkit (Hydra entry points) -------------------------------------------------------

_HYDRA_PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def _run_hydra(entry_point, prog: str, args: list[str]) -> None:
    """Hand the arguments to a @hydra.main function as if it were its own program, so every Hydra
    feature works: overrides, --multirun sweeps, --cfg job, --help."""
    saved = sys.argv
    sys.argv = [prog, *args]
    try:
        entry_point()
    finally:
        sys.argv = saved


@main.command(context_settings=_HYDRA_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train(args: tuple[str, ...]) -> None:
    """Train a segmentation model: Hydra overrides, e.g. `experiment=smoke trainer.max_epochs=5`."""
    from earthsignature.train.train import main as train_main

    _run_hydra(train_main, "earthsignature train", list(args))


@main.command(context_settings=_HYDRA_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def finetune(args: tuple[str, ...]) -> None:
    """Fine-tune a pre-trained model on a pilot task: `pretrained=CKPT [finetune=head|full] data=...`."""
    from earthsignature.train.train import finetune_main

    _run_hydra(finetune_main, "earthsignature finetune", list(args))


@main.command(context_settings=_HYDRA_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def evaluate(args: tuple[str, ...]) -> None:
    """Score models on the Table 2 test sets: `checkpoint=CKPT [test_sets.burnt_area.checkpoint=...]`."""
    from earthsignature.train.evaluate import main as evaluate_main

    _run_hydra(evaluate_main, "earthsignature evaluate", list(args))


# --- model service: export, registry, Triton repository, inference ----------------------------------


def _tracking_uri(explicit: str | None) -> str:
    """--tracking-uri, else the training logger's (conf/logger/mlflow.yaml)."""
    return explicit or str(load_config("logger", "mlflow").tracking_uri)


_tracking_option = click.option("--tracking-uri", default=None,
                                help="MLflow tracking URI (default: conf/logger/mlflow.yaml)")


def _registry(tracking_uri: str | None):
    from earthsignature.export.registry import ModelRegistry

    return ModelRegistry(_tracking_uri(tracking_uri))


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


@main.command("export")
@click.argument("source")
@click.option("--name", required=True, help="registered model name, e.g. clc-unet")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="folder for model.onnx + manifest.json (default: var/exports/NAME)")
@click.option("--tile-size", type=int, default=256, show_default=True, help="recommended inference tile")
@click.option("--overlap", type=int, default=32, show_default=True, help="recommended tile overlap")
@click.option("--tolerance", type=float, default=1e-3, show_default=True, help="max |logit difference|")
@click.option("--register/--no-register", default=True, show_default=True,
              help="register the export as a new version in the MLflow registry")
@_tracking_option
def export_command(source: str, name: str, out: Path | None, tile_size: int, overlap: int, tolerance: float,
                   register: bool, tracking_uri: str | None) -> None:
    """Export a checkpoint (path or runs:/RUN_ID) to ONNX + manifest, verify parity, register it."""
    from earthsignature.export.onnx_export import ExportError, export_checkpoint

    out = out or PROJECT_ROOT / "var" / "exports" / name
    try:
        onnx_path, manifest, report = export_checkpoint(_checkpoint_from(source, tracking_uri), out, name,
                                                        tile_size, overlap, tolerance)
    except (ExportError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{onnx_path}  max |logit diff| {report.max_abs_logit_diff:.2e}, "
               f"argmax agreement {report.argmax_agreement:.5f} on {len(report.shapes)} input sizes")
    if register:
        registered = _registry(tracking_uri).register(onnx_path, manifest, report.as_metrics())
        registered.save(out / "manifest.json")
        click.echo(f"registered {registered.name} version {registered.version}")


@main.group()
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
@click.option("--require", multiple=True, help="gate such as test_miou>=0.5 (repeatable)")
@_tracking_option
def model_promote(name: str, version: str, alias: str, require: tuple[str, ...], tracking_uri: str | None) -> None:
    """Move ALIAS to VERSION of NAME, if every --require gate holds."""
    from earthsignature.export.registry import RegistryError

    try:
        info = _registry(tracking_uri).promote(name, version, alias, list(require))
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
    import tempfile

    from earthsignature.export.registry import RegistryError
    from earthsignature.export.triton_repository import ServingOptions, write_model

    registry = _registry(tracking_uri)
    try:
        name, version = registry.resolve(reference)
        options = ServingOptions(backend, max_batch_size, tuple(preferred), queue_delay_us, instance_kind,
                                 instances, num_versions)
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path, manifest = registry.fetch(name, version, Path(tmp))
            folder = write_model(repository, onnx_path, manifest.with_version(version), options)
    except (RegistryError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"{folder}")


@model.command("predict")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--backend", type=click.Choice(["onnxruntime", "triton"]), default="onnxruntime", show_default=True)
@click.option("--url", default="127.0.0.1:8001", show_default=True, help="Triton gRPC address")
@click.option("--batch-size", type=int, default=8, show_default=True)
def model_predict(model_dir: Path, image: Path, output: Path, backend: str, url: str, batch_size: int) -> None:
    """Segment a GeoTIFF of the model's bands (digital numbers) into a class-map GeoTIFF.

    MODEL_DIR holds model.onnx and manifest.json (an export folder, or a Triton version folder).
    """
    from earthsignature.service.model.backends import InferenceError, create_backend
    from earthsignature.service.model.predict import predict_geotiff

    config = {"kind": backend, "url": url, "batch_size": batch_size, "wait_ready_s": 30}
    try:
        histogram = predict_geotiff(create_backend(config, model_dir), image, output)
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

    from earthsignature.service.model.local_triton import LocalTritonServer, TritonUnavailable

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


# --- database service: certificates, server, queries ---------------------------------------------


def _certs_dir(config: str, overrides: tuple[str, ...]) -> Path:
    return Path(_service_config(config, overrides).api.certs_dir)


@main.group()
def certs() -> None:
    """Certificates for the API's mutual TLS: the CA, server, internal and pilot certificates."""


@certs.command("init")
@click.option("--server-name", "server_names", multiple=True, default=("127.0.0.1", "localhost"), show_default=True,
              help="host names / IP addresses the server certificate is valid for")
@_config_option
@_overrides_argument
def certs_init(server_names: tuple[str, ...], config: str, overrides: tuple[str, ...]) -> None:
    """Create the CA, the server certificate and the monitor's internal certificate (once)."""
    from earthsignature.service.auth import CertificateAuthority

    folder = _certs_dir(config, overrides)
    ca = CertificateAuthority(folder / "ca")
    ca.init()
    for name, role, names in (("server", None, server_names), ("monitor", "internal", ())):
        if not (folder / name / f"{name}.crt").exists():
            ca.issue(folder / name, name, role, names)
    click.echo(f"CA {ca.cert_path}\nserver {folder / 'server' / 'server.crt'}\n"
               f"internal client {folder / 'monitor' / 'monitor.crt'}")


@certs.command("request")
@click.option("--name", required=True, help="the pilot's name (the certificate's common name)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True)
def certs_request(name: str, out: Path) -> None:
    """(Pilot side) make a private key and a certificate signing request; send only the .csr."""
    from earthsignature.service.auth import request_certificate

    key, csr = request_certificate(out, name)
    click.echo(f"key {key} (keep it)\nCSR {csr} (send it to the operator)")


@certs.command("issue")
@click.option("--csr", "csr_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--role", type=click.Choice(["pilot", "internal"]), required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="default: beside the CSR")
@_config_option
@_overrides_argument
def certs_issue(csr_path: Path, role: str, out: Path | None, config: str, overrides: tuple[str, ...]) -> None:
    """(Operator side) sign a CSR with the project CA, for a role."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from earthsignature.service.auth import AuthError, CertificateAuthority

    ca = CertificateAuthority(_certs_dir(config, overrides) / "ca")
    try:
        certificate = ca.sign(x509.load_pem_x509_csr(csr_path.read_bytes()), role)
    except (AuthError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    out = out or csr_path.with_suffix(".crt")
    out.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    click.echo(f"{out} (serial {certificate.serial_number}); give it back with {ca.cert_path}")


@certs.command("revoke")
@click.argument("serial", type=int)
@_config_option
@_overrides_argument
def certs_revoke(serial: int, config: str, overrides: tuple[str, ...]) -> None:
    """Deny a certificate by serial number; a running server rereads the list."""
    from earthsignature.service.auth import CertificateAuthority

    CertificateAuthority(_certs_dir(config, overrides) / "ca").revoke(serial)
    click.echo(f"revoked {serial}")


@main.command()
@click.option("--insecure", is_flag=True, help="plain-text gRPC, every caller internal: local development only")
@_config_option
@_overrides_argument
def serve(insecure: bool, config: str, overrides: tuple[str, ...]) -> None:
    """Run the Database service: gRPC API (mutual TLS) and its HTTP gateway, until SIGTERM or Ctrl-C."""
    import signal
    import threading

    from earthsignature.service.database.api import ApiLimits
    from earthsignature.service.database.http_gateway import start_gateway
    from earthsignature.service.database.server import TlsFiles, build_server

    cfg = _service_config(config, overrides)
    database_url = cfg.db.url
    if not database_url:
        _, cluster = _cluster(config, overrides)
        database_url = cluster.up(cfg.db.name)
    folder = Path(cfg.api.certs_dir)
    tls = None
    if not insecure:
        tls = TlsFiles(folder / "ca" / "ca.crt", folder / "server" / "server.crt", folder / "server" / "server.key",
                       folder / "ca" / "revoked.json")
        if not tls.server_cert.exists():
            raise click.ClickException(f"no server certificate in {folder}: run `earthsignature certs init` "
                                       "(or --insecure for local development)")
    limits = ApiLimits(**cfg.api.limits)
    server = build_server(database_url, cfg.api.store_url, cfg.api.address, tls, insecure, limits, cfg.api.workers)
    gateway = None
    if cfg.api.http_port:
        host = cfg.api.address.rsplit(":", 1)[0]
        gateway = start_gateway(server.service, (host, int(cfg.api.http_port)), tls)
    click.echo(f"gRPC on {cfg.api.address} ({'insecure' if insecure else 'mutual TLS'})"
               + (f", HTTP gateway on {host}:{cfg.api.http_port}" if gateway else ""), err=True)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()
    if gateway:
        gateway.shutdown()
    server.stop(grace=10)
    click.echo("stopped", err=True)


def _client(address: str | None, ca: Path | None, cert: Path | None, key: Path | None, insecure: bool,
            config: str, overrides: tuple[str, ...]):
    from earthsignature.client import EarthSignatureClient

    cfg = _service_config(config, overrides)
    folder = Path(cfg.api.certs_dir)
    return EarthSignatureClient(address or cfg.api.address, ca=ca or folder / "ca" / "ca.crt",
                                cert=cert or folder / "monitor" / "monitor.crt",
                                key=key or folder / "monitor" / "monitor.key", insecure=insecure)


def _connection_options(function):
    for option in reversed([
        click.option("--address", default=None, help="server host:port (default: api.address)"),
        click.option("--ca", type=click.Path(exists=True, path_type=Path), default=None, help="CA certificate"),
        click.option("--cert", type=click.Path(exists=True, path_type=Path), default=None, help="your certificate"),
        click.option("--key", type=click.Path(exists=True, path_type=Path), default=None, help="your private key"),
        click.option("--insecure", is_flag=True, help="plain-text connection (a server run with --insecure)"),
        click.option("--save", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="write each map as GeoTIFF and PNG into this folder"),
        _config_option,
    ]):
        function = option(function)
    return function


@main.group()
def query() -> None:
    """Ask the API as a pilot does: list by area/date/ids/categories, or search with text."""


def _print_and_save(results, save: Path | None) -> None:
    from earthsignature.service.database.pictures import save_map_png

    count = 0
    for result in results:
        count += 1
        top = sorted(result.legend.values(), key=lambda v: -v[3])[:3]
        click.echo(f"{result.start:%Y-%m-%d %H:%M}  {result.tile_id:<6} {result.model:<18} "
                   f"cloud {result.cloud_cover:5.1f}%  " + ", ".join(f"{n} {f:.0%}" for _, n, _, f in top))
        if save and result.classes is not None:
            save.mkdir(parents=True, exist_ok=True)
            stem = save / f"{result.product_id}_{result.model.replace(':', '_v')}"
            result.save_geotiff(stem.with_suffix(".tif"))
            save_map_png(result, stem.with_suffix(".png"))
    click.echo(f"{count} result(s)" + (f", maps in {save}" if save and count else ""))


@query.command("list")
@click.option("--wkt", default=None, help="area, EPSG:4326 Well-Known Text")
@click.option("--start", default=None, help="acquired after (ISO date)")
@click.option("--end", default=None, help="acquired before (ISO date)")
@click.option("--product", "products", multiple=True)
@click.option("--category", "categories", multiple=True, help="class name or code (repeatable)")
@click.option("-n", "--n-results", type=int, default=None)
@_connection_options
@_overrides_argument
def query_list(wkt, start, end, products, categories, n_results, address, ca, cert, key, insecure, save, config,
               overrides) -> None:
    """ListSegmentation."""
    import grpc

    try:
        with _client(address, ca, cert, key, insecure, config, overrides) as client:
            _print_and_save(client.list(wkt=wkt, start=start, end=end, product_ids=products,
                                        categories=categories, n_results=n_results), save)
    except grpc.RpcError as error:
        raise click.ClickException(f"{error.code().name}: {error.details()}") from error


@query.command("search")
@click.argument("text")
@click.option("-n", "--n-results", type=int, default=None)
@_connection_options
@_overrides_argument
def query_search(text, n_results, address, ca, cert, key, insecure, save, config, overrides) -> None:
    """SearchSegmentation with the text query language (see the README)."""
    import grpc

    try:
        with _client(address, ca, cert, key, insecure, config, overrides) as client:
            _print_and_save(client.search(text, n_results=n_results), save)
    except grpc.RpcError as error:
        raise click.ClickException(f"{error.code().name}: {error.details()}") from error


# --- monitor ----------------------------------------------------------------------------------------


@main.group()
def monitor() -> None:
    """The daily ingestion: search, download, segment and publish Sentinel-2 products (Luigi)."""


@monitor.command("run")
@click.option("--date", "day", default=None, help="the day to ingest (default: yesterday, UTC)")
@click.option("--start", default=None, help="backfill: first day")
@click.option("--end", default=None, help="backfill: last day")
@click.option("--workers", type=int, default=None, help="parallel Luigi workers (default: monitor.workers)")
@click.option("--scheduler", default=None, help="host:port of a luigid central scheduler (default: local)")
@click.option("--insecure", is_flag=True, help="publish to a server run with --insecure")
@_config_option
@_overrides_argument
def monitor_run(day, start, end, workers, scheduler, insecure, config, overrides) -> None:
    """Ingest a day (or a backfill range); the exit code says whether every product succeeded."""
    from datetime import UTC, date, datetime, timedelta

    from earthsignature.service.monitor.runner import run_days

    if day and (start or end):
        raise click.UsageError("give --date or --start/--end, not both")
    if bool(start) != bool(end):
        raise click.UsageError("a backfill needs both --start and --end")
    first = date.fromisoformat(start or day) if (start or day) else datetime.now(UTC).date() - timedelta(days=1)
    last = date.fromisoformat(end) if end else first
    if last < first:
        raise click.UsageError(f"--end {last} is before --start {first}")
    cfg = _service_config(config, overrides)
    try:
        report = run_days(cfg, first, last, workers, scheduler, insecure)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    for task, reason in report.failures:
        click.echo(f"FAILED {task}\n       {reason}", err=True)
    click.echo(f"{'all products succeeded' if report.succeeded else f'{len(report.failures)} failure(s)'} "
               f"for {first}..{last}")
    sys.exit(0 if report.succeeded else 1)


@monitor.command("status")
@click.option("--date", "day", required=True)
@_config_option
@_overrides_argument
def monitor_status(day: str, config: str, overrides: tuple[str, ...]) -> None:
    """What the work folder says about a day's products."""
    from datetime import date

    from earthsignature.service.monitor.runner import day_status

    rows = day_status(_service_config(config, overrides), date.fromisoformat(day))
    if not rows:
        click.echo(f"nothing searched for {day} yet")
    for row in rows:
        models = ", ".join(f"{m}: {state}" for m, state in row["models"].items())
        click.echo(f"{row['tile_id']:<6} {'downloaded' if row['downloaded'] else 'not downloaded':<15} {models}  "
                   f"{row['product_id']}")


# --- demo -------------------------------------------------------------------------------------------


@main.command()
@click.option("--keep-running", is_flag=True, help="leave the database and the gRPC server running afterwards")
@_config_option
@_overrides_argument
def demo(keep_running: bool, config: str, overrides: tuple[str, ...]) -> None:
    """Run the main job on embedded defaults: data, training, model service, database service, monitor,
    and a pilot's queries."""
    from earthsignature.demo import DemoSettings, run_demo

    cfg, cluster = _cluster(config, overrides)
    run_demo(cfg, cluster, list(overrides), DemoSettings(keep_running=keep_running))


if __name__ == "__main__":
    main()
