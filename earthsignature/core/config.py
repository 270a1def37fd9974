"""Hydra configuration: the package's ``conf/`` tree composed with command-line overrides.

Every command reads its settings from here, so a value changes in one YAML file or with one
``key=value`` override (``db.port=5544``), never in code. The tree ships inside the package, so a
service-only ``pip install .`` has it too.

Where state lives (the private cluster, MLflow store, rasters, certificates, runs) is one setting,
``${home:}`` in the YAML: ``$EARTHSIGNATURE_HOME`` when set, else the checkout's ``var/`` when the package
runs from a clone, else the user's data folder (``$XDG_DATA_HOME/earthsignature``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from earthsignature.core.settings import SCHEMAS

PACKAGE_DIR = Path(__file__).resolve().parent.parent
CONFIG_DIR = PACKAGE_DIR / "conf"
#: The clone the package runs from, or None for an installed package.
CHECKOUT: Path | None = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").exists() else None


def state_home() -> Path:
    """The folder every part keeps its state in (see the module's docstring)."""
    if explicit := os.environ.get("EARTHSIGNATURE_HOME"):
        return Path(explicit).expanduser().resolve()
    if CHECKOUT is not None:
        return CHECKOUT / "var"
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "earthsignature"


OmegaConf.register_new_resolver("home", lambda: str(state_home()), replace=True)


def _register_schemas() -> None:
    """Each schema in its group, and at the root too: a group's YAML names its schema relatively, which
    resolves in the group when the file is a choice of a bigger config (``logger: mlflow``) and at the
    root when the file is composed on its own (``load_config("logger", "mlflow")``)."""
    store = ConfigStore.instance()
    for group, name, schema in SCHEMAS:
        store.store(group=group, name=name, node=schema)
        if group is not None:
            store.store(name=name, node=schema)


_register_schemas()


class ConfigError(ValueError):
    """A config that does not compose: an unknown key, a value of the wrong type, a missing file."""


def load_config(group: str | None, name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/<group>/<name>.yaml`` (``conf/<name>.yaml`` when ``group`` is None) with
    ``overrides`` in Hydra's override syntax."""
    config_dir = CONFIG_DIR / group if group else CONFIG_DIR
    if not (config_dir / f"{name}.yaml").exists():
        choices = sorted(p.stem for p in config_dir.glob("*.yaml"))
        raise ConfigError(f"no config {config_dir.relative_to(PACKAGE_DIR)}/{name}.yaml; "
                                f"choose one of {choices}")
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        try:
            return compose(config_name=name, overrides=list(overrides))
        except (HydraException, OmegaConfBaseException) as error:
            raise ConfigError(one_line(error)) from error


def one_line(error: BaseException) -> str:
    """Hydra's and OmegaConf's messages (and their cause's), without their multi-line context blocks."""
    message = _first_lines(error)
    if error.__cause__ is not None:
        message = f"{message}: {_first_lines(error.__cause__)}"
    return message


def _first_lines(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    keep = [line for line in lines if not line.startswith(("full_key:", "object_type=", "reference_type="))]
    key = next((line.removeprefix("full_key:").strip() for line in lines if line.startswith("full_key:")), "")
    message = " ".join(keep).split(" Config search path:")[0] or type(error).__name__
    return f"{key}: {message}" if key and key not in message else message
