"""The folder layouts several parts share, each stated once.

A model folder (``model.onnx`` + ``manifest.json``) is written by export and deploy and read by the model
service and the monitor; a data set's root says whether the fixture writers made it; the certificate folder
is written by ``certs init`` and read by the server, the monitor and the pilots' client; the monitor's work
folder is written by its pipeline and read by ``monitor status``. Nobody else rebuilds these paths from
strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class ModelFolder:
    """An exported model: the ONNX graph and the manifest that describes it."""

    path: Path

    ONNX_NAME = "model.onnx"
    MANIFEST_NAME = "manifest.json"

    @property
    def onnx(self) -> Path:
        return Path(self.path) / self.ONNX_NAME

    @property
    def manifest(self) -> Path:
        return Path(self.path) / self.MANIFEST_NAME


@dataclass(frozen=True)
class DatasetFolder:
    """A training data set's root. A set the fixture writers made (``earthsignature.samples``) carries a
    marker file there, so what is trained on it knows, and says, that it never saw real Sentinel-2 data."""

    path: Path

    SYNTHETIC_MARKER: ClassVar[str] = "SYNTHETIC-DATA.txt"

    @property
    def synthetic_marker(self) -> Path:
        return Path(self.path) / self.SYNTHETIC_MARKER

    @property
    def kind(self) -> str:
        """"synthetic" for a set a fixture writer made, else "real"."""
        return "synthetic" if self.synthetic_marker.exists() else "real"


@dataclass(frozen=True)
class Identity:
    """One party's certificate and private key."""

    cert: Path
    key: Path

    @classmethod
    def named(cls, folder: Path, name: str) -> Identity:
        """``NAME.crt`` and ``NAME.key`` in ``folder`` (and the request ``NAME.csr`` beside them)."""
        return cls(Path(folder) / f"{name}.crt", Path(folder) / f"{name}.key")

    @property
    def request(self) -> Path:
        return self.key.with_suffix(".csr")


@dataclass(frozen=True)
class AuthorityFolder:
    """A certificate authority's folder: its certificate, its key and the revoked serials."""

    path: Path

    @property
    def cert(self) -> Path:
        return Path(self.path) / "ca.crt"

    @property
    def key(self) -> Path:
        return Path(self.path) / "ca.key"

    @property
    def revoked(self) -> Path:
        return Path(self.path) / "revoked.json"


@dataclass(frozen=True)
class CertificateFolder:
    """The certificate exchange's folder: ``ca/`` (the project's authority) and one folder per identity."""

    path: Path

    #: Identity -> role of the certificates the project issues itself: the server (no role), the monitor
    #: (internal: may publish) and the demo's pilot.
    ROLES: ClassVar[dict[str, str | None]] = {"server": None, "monitor": "internal", "pilot": "pilot"}

    @property
    def authority(self) -> AuthorityFolder:
        return AuthorityFolder(Path(self.path) / "ca")

    @property
    def ca_cert(self) -> Path:
        return self.authority.cert

    @property
    def revoked(self) -> Path:
        return self.authority.revoked

    def identity_dir(self, name: str) -> Path:
        return Path(self.path) / name

    @property
    def link_keys(self) -> Path:
        """The keys that sign map links (``current.key``, and ``previous.key`` after a rotation)."""
        return Path(self.path) / "link-keys"

    def identity(self, name: str) -> Identity:
        return Identity.named(self.identity_dir(name), name)


@dataclass(frozen=True)
class MonitorWorkFolder:
    """The monitor's work folder: downloaded products, and per day the search, per-product model
    outputs and the day's completion marker (the Luigi targets)."""

    path: Path

    @property
    def products(self) -> Path:
        return Path(self.path) / "products"

    def fetched(self, product_id: str) -> bool:
        """Whether the product is here: an unpacked ``.SAFE``, or a COG-asset item's JSON record."""
        return any((self.products / f"{product_id}{suffix}").exists() for suffix in (".SAFE", ".json"))

    def day(self, day: date) -> Path:
        return Path(self.path) / f"{day:%Y-%m-%d}"

    def search(self, day: date) -> Path:
        """The day's products as the monitor lists them."""
        return self.day(day) / "search.json"

    def search_results(self, day: date) -> Path:
        """The provider's search results, as EODAG serializes them (every later step rebuilds from them)."""
        return self.day(day) / "search" / "results.geojson"

    def failures(self, day: date) -> Path:
        return self.day(day) / "failures"

    def failure(self, day: date, task_id: str) -> Path:
        """Why a step of the day failed (a ``records.Failure``), until it succeeds."""
        return self.failures(day) / f"{task_id}.json"

    def product_dir(self, day: date, product_id: str) -> Path:
        return self.day(day) / product_id

    def fetched_record(self, day: date, product_id: str) -> Path:
        """Where the product is readable as L2A on this worker (a ``records.FetchedProduct``)."""
        return self.product_dir(day, product_id) / "fetched.json"

    def model_output(self, day: date, product_id: str, model_key: str) -> Path:
        return self.product_dir(day, product_id) / model_key

    @staticmethod
    def segmentation(model_output: Path) -> Path:
        return Path(model_output) / "segmentation.json"

    @staticmethod
    def published(model_output: Path) -> Path:
        return Path(model_output) / "published.json"
