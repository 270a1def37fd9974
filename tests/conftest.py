"""Shared fixtures: one private PostGIS cluster per test session, a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from earthsignature.embedded.postgres import PostgresCluster, scratch_cluster

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def postgis_cluster() -> Iterator[PostgresCluster]:
    """A real PostgreSQL + PostGIS cluster on 127.0.0.1, started once and destroyed at the end."""
    # pytest's tmp is 0700: as root the server (run as `postgres`) could not reach it
    with scratch_cluster("earthsignature-postgis-", fast_unsafe=True) as (cluster, _):
        cluster.init()
        cluster.start()
        cluster.ensure_template()
        yield cluster


@pytest.fixture
def postgis_db(postgis_cluster: PostgresCluster) -> Iterator[str]:
    """SQLAlchemy URL of a fresh database cloned from the PostGIS template; dropped afterwards."""
    yield from fresh_database(postgis_cluster)


@pytest.fixture(scope="module")
def module_db(postgis_cluster: PostgresCluster) -> Iterator[str]:
    """One fresh database for a module's tests that share what they store."""
    yield from fresh_database(postgis_cluster)


def fresh_database(cluster: PostgresCluster) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    cluster.create_database(name)
    yield cluster.url(name)
    cluster.drop_database(name)


def write_checkpoint(path: Path, seed: int = 0, classes: str = "clc_level3") -> Path:
    """A small seeded model saved as a Lightning checkpoint (export, registry and backend tests need
    a model, not a trained one)."""
    import torch

    from earthsignature.core.nomenclature import get_nomenclature
    from earthsignature.train.module import SegmentationModule, save_checkpoint

    torch.manual_seed(seed)
    module = SegmentationModule(
        model={"name": "unet", "base_width": 4, "depth": 2}, nomenclature_name=classes,
        classes=get_nomenclature(classes).to_records(), bands=["B02", "B03", "B04", "B08"],
        normalization={"bands": ["B02", "B03", "B04", "B08"], "minimum": 0.0, "maximum": 10000.0,
                       "mean": [0.1, 0.12, 0.11, 0.3]})
    return save_checkpoint(module, path)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two different small CLC models (for versions 1 and 2)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    first = write_checkpoint(folder / "v1" / "model.ckpt", seed=1)
    return first, write_checkpoint(folder / "v2" / "model.ckpt", seed=2)
