"""The catalog schema: Alembic migrations create exactly what the models describe."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from earthsignature.service.catalog.schema import alembic_config, current_revision, head_revision, upgrade
from earthsignature.service.catalog.tables import Base

pytestmark = pytest.mark.postgis


def test_migrations_build_the_model_schema(postgis_db: str) -> None:
    assert current_revision(postgis_db) is None
    assert upgrade(postgis_db) == head_revision() == "0005"
    engine = sa.create_engine(postgis_db)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = [d for d in compare_metadata(context, Base.metadata)
                       if not (d[0] == "remove_table" and d[1].name == "spatial_ref_sys")]
        indexes = {i["name"]: i for i in sa.inspect(connection).get_indexes("products")}
    engine.dispose()
    assert differences == []
    assert indexes["ix_products_footprint_time"]["column_names"] == ["footprint", "start_time"]  # one GiST
    assert upgrade(postgis_db) == "0005"  # idempotent


def test_downgrade_removes_the_catalog(postgis_db: str) -> None:
    from alembic import command

    upgrade(postgis_db)
    command.downgrade(alembic_config(postgis_db), "base")
    engine = sa.create_engine(postgis_db)
    with engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
    engine.dispose()
    assert not tables & {"products", "segmentations", "class_statistics"}
