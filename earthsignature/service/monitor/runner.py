"""``earthsignature monitor run``: resolve the settings, run the Luigi DAG, read a day's status.

The embedded provider (a local STAC catalog served on 127.0.0.1) is started by the caller, which passes
its URL: the monitor itself only knows EODAG providers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import luigi
from omegaconf import DictConfig, OmegaConf

from earthsignature.core.layout import CertificateFolder, MonitorWorkFolder
from earthsignature.service.monitor import pipeline
from earthsignature.service.monitor.source import local_provider_yaml

#: The provider name of a static STAC catalog (the embedded one, or one served elsewhere).
LOCAL_PROVIDER = "local_s2"


@dataclass
class RunReport:
    days: list[date]
    succeeded: bool
    failures: list[tuple[str, str]]
    summary: str


def _settings(cfg: DictConfig, catalog_url: str | None, insecure: bool) -> dict:
    monitor = OmegaConf.to_container(cfg.monitor, resolve=True)
    if not monitor["models"]:
        raise ValueError("monitor.models is empty: name at least one model folder (model.onnx + manifest.json)")
    certs = CertificateFolder(Path(cfg.api.certs_dir))
    identity = certs.identity("monitor")
    monitor["api"] = {"address": cfg.api.address, "insecure": insecure,
                      **({} if insecure else {"ca": str(certs.ca_cert), "cert": str(identity.cert),
                                               "key": str(identity.key)})}
    if catalog_url:
        monitor["provider_yaml"] = local_provider_yaml(
            LOCAL_PROVIDER, catalog_url, MonitorWorkFolder(Path(monitor["work_dir"])).products,
            {"S2_MSI_L2A": "sentinel-2-l2a", "S2_MSI_L1C": "sentinel-2-l1c"})
    return monitor


def run_days(cfg: DictConfig, start: date, end: date, workers: int | None = None, scheduler: str | None = None,
             insecure: bool = False, catalog_url: str | None = None) -> RunReport:
    """Ingest every day from ``start`` to ``end``. ``catalog_url``: the static STAC catalog of the
    ``local_s2`` provider (``monitor.catalog_url`` when not given)."""
    days = [start + timedelta(days=k) for k in range((end - start).days + 1)]
    settings = _settings(cfg, catalog_url or cfg.monitor.get("catalog_url"), insecure)
    work = MonitorWorkFolder(Path(settings["work_dir"]))
    work.path.mkdir(parents=True, exist_ok=True)
    settings_file = work.path / f"settings-{os.getpid()}.json"
    settings_file.write_text(json.dumps(settings, indent=1))
    pipeline.configure(settings_file)
    if len(days) > 1:  # a backfill: Luigi's range tool over MonitorDay
        from luigi.tools.range import RangeDaily

        tasks = [RangeDaily(of=pipeline.MonitorDay, start=start, stop=end + timedelta(days=1))]
    else:
        tasks = [pipeline.MonitorDay(days[0])]
    options = {"workers": workers or int(settings["workers"]), "detailed_summary": True, "log_level": "WARNING"}
    if scheduler:
        host, port = scheduler.rsplit(":", 1)
        options.update(scheduler_host=host, scheduler_port=int(port))
    else:
        options["local_scheduler"] = True
    try:
        result = luigi.build(tasks, **options)
    finally:
        settings_file.unlink(missing_ok=True)
    failures = [f for day in days for f in pipeline.failures(day)]
    succeeded = all(work.done(day).exists() for day in days) and not failures
    return RunReport(days, succeeded, failures, result.summary_text)


def day_status(cfg: DictConfig, day: date) -> list[dict]:
    """What the work folder says about every product of ``day``: downloaded, segmented, published."""
    work = MonitorWorkFolder(Path(cfg.monitor.work_dir))
    if not work.search(day).exists():
        return []
    rows = []
    for product in json.loads(work.search(day).read_text())["products"]:
        models = {}
        for model in cfg.monitor.models:
            key = pipeline.model_key(model)
            output = work.model_output(day, product["product_id"], key)
            models[key] = ("published" if work.published(output).exists() else
                           "segmented" if work.segmentation(output).exists() else "pending")
        rows.append({"product_id": product["product_id"], "tile_id": product["tile_id"],
                     "downloaded": work.product(product["product_id"]).exists(), "models": models})
    return rows
