"""``earthsignature monitor run``: resolve the settings, start the local provider, run the Luigi DAG."""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import luigi
from omegaconf import DictConfig, OmegaConf

from earthsignature.service.monitor import pipeline
from earthsignature.service.monitor.source import local_provider_yaml
from earthsignature.service.monitor.stac_catalog import LocalStacServer

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
    certs = Path(cfg.api.certs_dir)
    monitor["api"] = {"address": cfg.api.address, "insecure": insecure,
                      **({} if insecure else {"ca": str(certs / "ca" / "ca.crt"),
                                               "cert": str(certs / "monitor" / "monitor.crt"),
                                               "key": str(certs / "monitor" / "monitor.key")})}
    if catalog_url:
        monitor["provider_yaml"] = local_provider_yaml(
            LOCAL_PROVIDER, catalog_url, Path(monitor["work_dir"]) / "products",
            {"S2_MSI_L2A": "sentinel-2-l2a", "S2_MSI_L1C": "sentinel-2-l1c"})
    return monitor


def run_days(cfg: DictConfig, start: date, end: date, workers: int | None = None, scheduler: str | None = None,
             insecure: bool = False) -> RunReport:
    days = [start + timedelta(days=k) for k in range((end - start).days + 1)]
    with ExitStack() as stack:
        catalog_url = cfg.monitor.get("catalog_url")
        if cfg.monitor.provider == LOCAL_PROVIDER and not catalog_url:
            catalog_url = stack.enter_context(LocalStacServer(Path(cfg.monitor.local_catalog))).catalog_url
        settings = _settings(cfg, catalog_url, insecure)
        work_dir = Path(settings["work_dir"])
        work_dir.mkdir(parents=True, exist_ok=True)
        settings_file = work_dir / f"settings-{os.getpid()}.json"
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
        result = luigi.build(tasks, **options)
        settings_file.unlink(missing_ok=True)
    failures = [f for day in days for f in pipeline.failures(day)]
    succeeded = all((work_dir / f"{day:%Y-%m-%d}" / "done.json").exists() for day in days) and not failures
    return RunReport(days, succeeded, failures, result.summary_text)


def day_status(cfg: DictConfig, day: date) -> list[dict]:
    """What the work folder says about every product of ``day``: downloaded, segmented, published."""
    work_dir = Path(cfg.monitor.work_dir)
    search = work_dir / f"{day:%Y-%m-%d}" / "search.json"
    if not search.exists():
        return []
    rows = []
    for product in json.loads(search.read_text())["products"]:
        folder = work_dir / f"{day:%Y-%m-%d}" / product["product_id"]
        models = {}
        for model in cfg.monitor.models:
            model_dir = folder / pipeline.model_key(model)
            models[pipeline.model_key(model)] = ("published" if (model_dir / "published.json").exists() else
                                        "segmented" if (model_dir / "segmentation.json").exists() else "pending")
        rows.append({"product_id": product["product_id"], "tile_id": product["tile_id"],
                     "downloaded": (work_dir / "products" / f"{product['product_id']}.SAFE").exists(),
                     "models": models})
    return rows
