"""Typed configuration: every setting's type and default, stated once.

These dataclasses are Hydra structured configs (registered in the ConfigStore by ``core.config``): the
YAML files of ``earthsignature/conf`` extend them and set only what they choose, and a value of the wrong
type or an unknown key fails when the config is composed, with the key in the message. The code reads
the same dataclasses (``ApiLimits``, ``BackendSettings``, the model settings), so no default is
restated where a setting is used. Paths may use ``${home:}``, the state folder (see ``core.config``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from earthsignature.core.raster_codec import DEFAULT_ENCODING

# --- the services (conf/service/*.yaml) ---------------------------------------------------------------


@dataclass
class DatabaseSettings:
    #: SQLAlchemy URL of the catalog; None: the project's private PostGIS cluster below.
    url: str | None = None
    name: str = "earthsignature"
    #: Private cluster (used when url is None). None: <home>/postgres.
    data_dir: str | None = None
    host: str = "127.0.0.1"
    port: int = 55432
    #: Folder of initdb/pg_ctl; None: the newest /usr/lib/postgresql/*/bin.
    bin_dir: str | None = None


@dataclass
class ApiLimits:
    default_results: int = 10
    max_results: int = 100
    default_pixels: int = 4_000_000  # per raster in a response; larger windows come from overviews
    max_pixels: int = 16_000_000
    max_response_bytes: int = 64 * 1024 * 1024
    default_encoding: int = DEFAULT_ENCODING
    # -- budgets: no request may hold the server or the catalog longer than these -------------------------
    #: a request's whole time (a gRPC client's own shorter deadline wins); over it: DEADLINE_EXCEEDED / 503
    request_deadline_s: float = 30.0
    #: every catalog statement (PostgreSQL statement_timeout) and every wait for a lock (lock_timeout)
    statement_timeout_ms: int = 10_000
    lock_timeout_ms: int = 2_000
    #: a CQL2 filter is parsed in a worker process, killed past this time or memory (parse_processes per
    #: server process)
    parse_timeout_s: float = 1.0
    parse_memory_mb: int = 512
    parse_processes: int = 2
    #: operations (comparisons, and/or/not...) in one CQL2 filter
    max_filter_terms: int = 64
    #: map queries and STAC searches working at once in one server process (searching the catalog, reading
    #: map windows, encoding answers, writing a STAC page), each on a thread of its own; the others wait their
    #: turn within their deadline.
    #: More threads at work than cores contend for the interpreter lock, and every answer then costs more CPU
    #: (README, Benchmarks).
    work_slots: int = 2
    #: area statistics: the largest area (km², on the ellipsoid; a Sentinel-2 tile is about 12,000) and the
    #: most maps one request may count
    statistics_max_area_km2: float = 100_000.0
    statistics_max_maps: int = 500
    #: a STAC search counts its matches (numberMatched) up to this many; beyond, it leaves the count out
    max_matched: int = 10_000
    #: how long a signed map link or an access token opens without a client certificate (``signed_links``,
    #: ``access_tokens``)
    link_lifetime_s: float = 3600.0
    #: HTTP: a request's headers must arrive within header_timeout_s of the connection (or of the previous
    #: response), its body within body_timeout_s
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0


@dataclass
class ApiSettings:
    """The Database service (``earthsignature serve``)."""

    address: str = "127.0.0.1:50051"  # gRPC; production: 0.0.0.0:443 behind the pilots' firewall rules
    http_port: int | None = 8443  # the HTTP app (bindings, STAC API, map files, map page); None: none
    #: Where pilots reach the HTTP app (https://maps.example.org behind a proxy); None: https://<address host>:
    #: <http_port>. Links in responses and STAC items (quicklooks, maps, items) point there, never at server paths.
    public_url: str | None = None
    store_url: str = "${home:}/rasters"  # COG store: a folder, or s3://bucket/prefix, gs://...
    #: an S3-compatible store's address (http(s)://host:port: MinIO, Ceph) for an s3:// store_url; None: AWS
    store_endpoint: str | None = None
    workers: int = 16  # threads the gRPC methods run in, per process (requests and answers: its event loop)
    #: Server processes sharing the gRPC and HTTP ports (SO_REUSEPORT: the kernel spreads connections), to
    #: use every core; more than 1 needs a fixed port in address. Each runs the gRPC server and the HTTP app.
    processes: int = 1
    limits: ApiLimits = field(default_factory=ApiLimits)
    certs_dir: str = "${home:}/certs"  # made by `earthsignature certs init`
    #: At start the server removes store files no catalog row names, if older than this (younger ones
    #: may belong to an ingestion in flight in another server process); 0 when it is the only server.
    store_check_min_age_s: float = 3600.0
    #: false for a store too large to list at every start (run `earthsignature store check` on a schedule)
    store_check_at_start: bool = True


@dataclass
class DownloadSettings:
    retries: int = 3
    backoff_s: float = 2.0
    #: Products whose bands are COG assets (Earth Search, Planetary Computer) are read in place, window by
    #: window over HTTP range requests; false: their band files are copied to the work folder first.
    stream_cogs: bool = True


@dataclass
class BackendSettings:
    """How the model service runs a model: ONNX Runtime in-process, or a Triton server."""

    kind: str = "onnxruntime"  # onnxruntime | triton
    #: Tiles per call. One is as fast on a CPU as more and bounds ONNX Runtime's memory (its activations
    #: grow with batch x tile^2: 0.4 GB for one 512 px tile with the benchmark's UNet, 2.5 GB for 8).
    batch_size: int = 1
    threads: int = 0  # onnxruntime: intra-op threads, 0: all cores
    #: onnxruntime: execution providers in order of preference: cpu, cuda, tensorrt (a GPU build of
    #: onnxruntime where there is a GPU; the CPU is always the last resort)
    providers: list[str] = field(default_factory=lambda: ["cpu"])
    in_flight: int = 2  # triton: requests kept in flight, so the server computes while the client blends
    # triton only
    url: str | None = None  # host:port of its gRPC endpoint
    model_name: str | None = None  # None: the manifest's name
    model_version: str | None = None  # None: the manifest's version
    timeout_s: float = 60.0
    retries: int = 3
    backoff_s: float = 0.5
    wait_ready_s: float = 0.0
    ssl: bool = False
    root_certificates: str | None = None  # PEM files
    private_key: str | None = None
    certificate_chain: str | None = None


@dataclass
class MonitorSettings:
    """The Monitor service (``earthsignature monitor run``): daily ingestion."""

    work_dir: str = "${home:}/monitor"
    #: EODAG provider. local_s2: a static STAC catalog: the zipped products of local_catalog served on
    #: 127.0.0.1, or catalog_url; any EODAG provider name (cop_dataspace, earth_search...) searches and
    #: downloads there, with credentials in EODAG's environment variables.
    provider: str = "local_s2"
    local_catalog: str = "${home:}/demo/catalog"
    catalog_url: str | None = None
    #: EODAG product types (S2_MSI_L2A: SAFE zips or, on Planetary Computer, COG items; S2_MSI_L2A_COG: Earth
    #: Search's COG items); L1C products (S2_MSI_L1C) need Sen2Cor (L2A_Process) installed.
    product_types: list[str] = field(default_factory=lambda: ["S2_MSI_L2A"])
    area_wkt: str = "POLYGON((-25 34, 45 34, 45 72, -25 72, -25 34))"  # Europe
    max_cloud_cover: float | None = None  # percent
    download: DownloadSettings = field(default_factory=DownloadSettings)
    #: Model folders (model.onnx + manifest.json), e.g. Triton version folders written by `model deploy`.
    models: list[str] = field(default_factory=list)
    backend: BackendSettings = field(default_factory=BackendSettings)
    workers: int = 2


@dataclass
class ServiceSettings:
    db: DatabaseSettings = field(default_factory=DatabaseSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)


# --- the training toolkit (conf/train.yaml, finetune.yaml, evaluate.yaml and their groups) ----------


@dataclass
class DataSettings:
    """A data set (conf/data/*.yaml): BigEarthNet v2 (family bigearthnet) or image/mask pairs."""

    family: str = MISSING  # bigearthnet | pairs
    root: str = MISSING
    taxonomy: str | None = None  # bigearthnet: clc_level3 | clc_level2 | clc_level1 | bigearthnet19
    #: bigearthnet: geotiff (the release's folders) | lmdb (packed by `earthsignature data pack`: much faster)
    source: str = "geotiff"
    kind: str | None = None  # pairs: hrl | urban_atlas | burnt_area | crops | pilot
    bands: list[str] = field(default_factory=lambda: ["B02", "B03", "B04", "B08"])  # the seed's 10 m bands
    batch_size: int = 128
    num_workers: int = 4
    augment: bool = True
    stats_file: str | None = None  # None: <root>/earthsignature-stats-<bands>.json
    #: A mapping here writes a synthetic set at root when it is missing (smoke runs, tests).
    fixture: Any = None  # a mapping (Any: Hydra cannot merge a mapping into an Optional[Dict] None)


@dataclass
class UNetSettings:
    """The seed's UNet (conf/model/unet.yaml)."""

    name: str = "unet"
    base_width: int = 64
    depth: int = 4


@dataclass
class SmpUNetSettings:
    """A segmentation_models_pytorch model (conf/model/smp_unet.yaml)."""

    name: str = "smp"
    arch: str = "Unet"
    encoder_name: str = "resnet18"
    encoder_weights: str | None = None


@dataclass
class TrainerSettings:
    """Lightning Trainer arguments (conf/trainer/*.yaml)."""

    max_epochs: int = 34
    accelerator: str = "auto"
    devices: Any = 1  # a count, -1 (all), a list of ids or "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    log_every_n_steps: int = 10
    deterministic: bool = False
    enable_progress_bar: bool = True
    sync_batchnorm: bool = False


@dataclass
class LoggerSettings:
    """MLflow tracking (conf/logger/*.yaml)."""

    enabled: bool = True
    tracking_uri: str = "sqlite:///${home:}/mlflow.db"
    #: Where new experiments keep their artifacts (MLflow's default is ./mlruns of whatever folder you ran in).
    #: Ignored by a tracking server, which has its own artifact store.
    artifact_location: str = "${home:}/mlartifacts"
    experiment_name: str = "earthsignature"
    run_name: str | None = None  # None: the experiment and the command line's overrides


@dataclass
class OptimizerSettings:
    """Adam with the seed's settings."""

    lr: float = 1.0e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0


@dataclass
class CheckpointSettings:
    """The best checkpoint has the lowest validation loss (the seed picks epoch 34 by it)."""

    monitor: str = "val_loss"
    mode: str = "min"


@dataclass
class PromotionGate:
    """What a model of an experiment must reach before it is promoted and served (``model promote`` enforces
    it by default, the demo promotes through it): at least ``minimum[metric]`` on the test set (MLflow's
    names: ``test_miou: 0.5``), and, with ``beat_champion``, more than the current ``@champion`` on each of
    those metrics, tested on the same test set."""

    minimum: dict[str, float] = field(default_factory=dict)
    beat_champion: bool = False


@dataclass
class TrainSettings:
    data: Any = MISSING  # a DataSettings, from the data group
    model: Any = MISSING  # UNetSettings or SmpUNetSettings, from the model group
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    logger: LoggerSettings = field(default_factory=LoggerSettings)
    seed: int = 42
    task: str = "land_cover"
    ignore_index: int = 255
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    resume: str | None = None  # a checkpoint path, or "last" for this run folder's last.ckpt
    pretrained: str | None = None  # fine-tuning: the pre-trained checkpoint
    finetune: str | None = None  # head (the seed's protocol) | full (every layer)
    run_dir: str = "${hydra:runtime.output_dir}"  # checkpoints and reports
    test_after_fit: bool = True  # test the best checkpoint on the test split after training
    promotion: PromotionGate = field(default_factory=PromotionGate)  # what the model must reach to be served


@dataclass
class TestSetSettings:
    label: str = MISSING  # the row name in the report (Table 2)
    splits: list[str] = field(default_factory=lambda: ["test"])
    data: Any = MISSING  # a DataSettings, from the data group
    checkpoint: str | None = None  # a model for this set only (the fine-tuned burnt-area head)


@dataclass
class EvaluateSettings:
    checkpoint: str = MISSING
    only: list[str] | None = None  # names of test_sets to run; None: all
    ignore_index: int = 255
    batch_size: int = 64
    num_workers: int = 0
    report_dir: str = "${hydra:runtime.output_dir}"
    test_sets: dict[str, TestSetSettings] = field(default_factory=dict)
    logger: LoggerSettings = field(default_factory=LoggerSettings)


#: ConfigStore entries: (group, name, schema); a YAML file extends its schema in its defaults list.
SCHEMAS: tuple[tuple[str | None, str, type], ...] = (
    ("service", "service_schema", ServiceSettings),
    (None, "train_schema", TrainSettings),
    (None, "evaluate_schema", EvaluateSettings),
    ("data", "data_schema", DataSettings),
    ("model", "unet_schema", UNetSettings),
    ("model", "smp_unet_schema", SmpUNetSettings),
    ("trainer", "trainer_schema", TrainerSettings),
    ("logger", "logger_schema", LoggerSettings),
)
