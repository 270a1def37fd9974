"""Typed configuration: wrong types and unknown keys fail at composition, naming the key; the state
folder is one setting; the config tree ships inside the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from earthsignature.cli import main
from earthsignature.core import config
from earthsignature.core.config import CONFIG_DIR, PACKAGE_DIR, ConfigError, load_config
from earthsignature.core.settings import ApiLimits, ServiceSettings


@pytest.mark.parametrize(("group", "name", "override", "expected"), [
    (None, "train", "trainer.max_epochs=abc", r"trainer\.max_epochs.*could not be converted to Integer"),
    (None, "train", "model.base_width=wide", r"model\.base_width.*could not be converted to Integer"),
    (None, "evaluate", "batch_size=1.5", r"batch_size.*could not be converted to Integer"),
    (None, "train", "data.bogus=1", r"data\.bogus.*not in 'DataSettings'"),
    ("service", "embedded", "api.workers=many", r"api\.workers.*could not be converted to Integer"),
    ("service", "embedded", "db.nope=1", r"db\.nope.*not in 'DatabaseSettings'"),
    ("service", "embedded", "monitor.backend.ssl=maybe", r"monitor\.backend\.ssl.*not a valid bool"),
])
def test_a_wrong_value_or_key_fails_at_composition_in_one_line(group, name, override, expected) -> None:
    with pytest.raises(ConfigError, match=expected) as raised:
        load_config(group, name, [override])
    assert "\n" not in str(raised.value)


def test_the_cli_reports_a_bad_override_in_one_line_before_training() -> None:
    result = CliRunner().invoke(main, ["train", "trainer.max_epochs=abc"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: Error merging override trainer.max_epochs=abc: trainer.max_epochs: "
        "Value 'abc' of type 'str' could not be converted to Integer"]


def test_service_defaults_are_the_settings_defaults() -> None:
    cfg = load_config("service", "embedded")
    assert cfg.api.limits == ApiLimits().__dict__  # stated once, in core/settings.py
    assert set(cfg) == set(ServiceSettings.__dataclass_fields__)
    assert cfg.api.store_url == str(config.state_home() / "rasters")


def test_the_state_folder_is_one_setting(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EARTHSIGNATURE_HOME", str(tmp_path / "home"))
    cfg = load_config("service", "embedded")
    assert cfg.monitor.work_dir == str(tmp_path / "home" / "monitor")
    assert cfg.api.certs_dir == str(tmp_path / "home" / "certs")
    assert load_config("logger", "mlflow").tracking_uri == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    monkeypatch.delenv("EARTHSIGNATURE_HOME")
    assert config.state_home() == PACKAGE_DIR.parent / "var"  # a clone: the checkout's var/
    monkeypatch.setattr(config, "CHECKOUT", None)  # an installed package: the user's data folder
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert config.state_home() == tmp_path / "data" / "earthsignature"


def test_the_wheel_carries_the_config_tree_and_the_migrations(tmp_path: Path) -> None:
    """What a service-only `pip install .` gets: configs, legend, Alembic environment and revisions, the map page
    with its web library (copied into the package by `make web`)."""
    source = tmp_path / "source"  # a copy: building writes build/ and egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PACKAGE_DIR.parent / name, source / name)
    shutil.copytree(PACKAGE_DIR, source / "earthsignature", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("earthsignature-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("earthsignature/conf/service/embedded.yaml", "earthsignature/conf/train.yaml",
                   "earthsignature/conf/experiment/smoke.yaml", "earthsignature/core/resources/clc_legend.csv",
                   "earthsignature/service/catalog/migrations/env.py",
                   "earthsignature/service/catalog/migrations/script.py.mako",
                   "earthsignature/service/catalog/migrations/versions/0001_catalog.py",
                   "earthsignature/service/api/web/map.html", "earthsignature/service/api/web/static/map.js",
                   "earthsignature/service/api/web/static/vendor/ol.js"):
        assert needed in names, needed
    assert CONFIG_DIR.parent == PACKAGE_DIR
