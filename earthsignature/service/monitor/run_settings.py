"""The settings of one ``monitor run``, typed from the command line to the last task.

``monitor run`` resolves them once (``RunSettings.resolve``) and saves them where Luigi's configuration
points (``[earthsignature] settings_file``), so that forked workers read the same file; every task reads
them back as the same dataclasses (``MonitorSettings`` and its parts), never as a dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from earthsignature.core.layout import CertificateFolder
from earthsignature.core.settings import MonitorSettings
from earthsignature.service.monitor import records


@dataclass(frozen=True)
class ApiConnection:
    """How the monitor reaches the Database service."""

    address: str
    insecure: bool = False  # a server run with --insecure; otherwise mutual TLS with these files
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    page_size: int = 100  # results per ListSegmentation page (the server's api.limits.max_results)


@dataclass(frozen=True)
class RunSettings:
    monitor: MonitorSettings
    api: ApiConnection
    #: EODAG provider configuration of a static STAC catalog (the local_s2 provider); None: EODAG's own
    provider_yaml: str | None = None

    @classmethod
    def resolve(cls, cfg: DictConfig, insecure: bool, provider_yaml: str | None) -> RunSettings:
        """The settings of a run from the composed service config (``monitor`` and ``api``)."""
        monitor = OmegaConf.to_object(cfg.monitor)
        assert isinstance(monitor, MonitorSettings), "the service config is composed from its structured config"
        if not monitor.models:
            raise ValueError("monitor.models is empty: name at least one model folder (model.onnx + manifest.json)")
        certs = CertificateFolder(Path(cfg.api.certs_dir))
        identity = certs.identity("monitor")
        api = ApiConnection(cfg.api.address, insecure, page_size=cfg.api.limits.max_results,
                            **({} if insecure else {"ca": str(certs.ca_cert), "cert": str(identity.cert),
                                                    "key": str(identity.key)}))
        return cls(monitor, api, provider_yaml)

    def save(self, path: Path) -> None:
        records.save(path, self)

    @classmethod
    def load(cls, path: Path) -> RunSettings:
        return records.load(cls, path)
