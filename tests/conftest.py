"""Shared fixtures: one private PostGIS cluster per test session, a fresh database per test."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from earthsignature.service.database.cluster import PostgresCluster, free_port

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def postgis_cluster() -> Iterator[PostgresCluster]:
    """A real PostgreSQL + PostGIS cluster on 127.0.0.1, started once and destroyed at the end."""
    # As root the server runs as `postgres`: its folder must be traversable (pytest's tmp is 0700).
    parent = Path(tempfile.mkdtemp(prefix="earthsignature-postgis-"))
    parent.chmod(0o755)
    cluster = PostgresCluster(parent / "data", port=free_port(), fast_unsafe=True)
    try:
        cluster.init()
        cluster.start()
        cluster.ensure_template()
        yield cluster
    finally:
        cluster.destroy()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def postgis_db(postgis_cluster: PostgresCluster) -> Iterator[str]:
    """SQLAlchemy URL of a fresh database cloned from the PostGIS template; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    postgis_cluster.create_database(name)
    yield postgis_cluster.url(name)
    postgis_cluster.drop_database(name)
