"""The private PostGIS cluster: real server, real extension, isolated databases."""

from __future__ import annotations

import math

import psycopg
import pytest
import sqlalchemy as sa

from earthsignature.embedded.ports import free_port
from earthsignature.embedded.postgres import ClusterError, PostgresCluster


@pytest.mark.postgis
def test_each_test_database_has_postgis(postgis_db: str) -> None:
    engine = sa.create_engine(postgis_db)
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT PostGIS_Version()")).scalar_one()
        area = conn.execute(sa.text(
            "SELECT ST_Area(ST_Transform(ST_MakeEnvelope(23, 38, 23.1, 38.1, 4326), 32634))"
        )).scalar_one()
    engine.dispose()
    assert version.startswith("3.")
    # 0.1 deg x 0.1 deg at 38.05 N on a sphere: 11.13 km x 11.13 km * cos(38.05 deg) = 97.6 km2
    expected = (111_320 * 0.1) ** 2 * math.cos(math.radians(38.05))
    assert area == pytest.approx(expected, rel=0.02)


@pytest.mark.postgis
def test_test_databases_are_isolated(postgis_cluster: PostgresCluster, postgis_db: str) -> None:
    engine = sa.create_engine(postgis_db)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE marker (id int)"))
    engine.dispose()
    with postgis_cluster.connect("template_postgis") as conn:
        exists = conn.execute("SELECT to_regclass('public.marker')").fetchone()[0]
    assert exists is None


@pytest.mark.postgis
def test_up_is_idempotent_and_down_stops(postgis_cluster: PostgresCluster) -> None:
    parent = postgis_cluster.data_dir.parent
    cluster = PostgresCluster(parent / "second", port=free_port(), fast_unsafe=True)
    try:
        url = cluster.up("catalog")
        assert url == f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/catalog"
        assert cluster.up("catalog") == url  # second call: nothing to do, same answer
        assert (cluster.socket_dir / f".s.PGSQL.{cluster.port}").exists()
        cluster.down()
        assert not cluster.is_running()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host="127.0.0.1", port=cluster.port, user="postgres", connect_timeout=2)
    finally:
        cluster.destroy()
    assert not cluster.data_dir.exists()


def test_missing_binaries_are_reported(tmp_path) -> None:
    with pytest.raises(ClusterError, match=r"not found in db.bin_dir=.*nowhere.*make setup"):
        PostgresCluster(tmp_path / "data", bin_dir=tmp_path / "nowhere")
