"""Fixtures the API tests share."""

from __future__ import annotations

import pytest

from .api_fixtures import make_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """The project CA with server, internal and pilot identities, and a foreign CA (one set per module)."""
    return make_certificates(tmp_path_factory.mktemp("certs"))
