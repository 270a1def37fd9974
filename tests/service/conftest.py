"""Fixtures the API tests share."""

from __future__ import annotations

import pytest

from earthsignature.service.catalog.catalog import Catalog
from earthsignature.service.catalog.raster_store import RasterStore
from earthsignature.service.catalog.schema import upgrade

from .api_fixtures import make_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """The project CA with server, internal and pilot identities, and a foreign CA (one set per module)."""
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def stored(postgis_db: str, tmp_path):
    """A migrated catalog and a raster store in a folder: what ingestion writes into."""
    upgrade(postgis_db)
    catalog = Catalog(postgis_db, pool_size=2)
    yield catalog, RasterStore((tmp_path / "rasters").as_uri())
    catalog.dispose()
