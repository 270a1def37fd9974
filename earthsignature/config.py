"""Hydra configuration: the ``conf/`` tree composed with command-line overrides.

Every CLI command reads its settings from here, so a value changes in one YAML file or with one
``key=value`` override (``db.port=5544``), never in code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "conf"

# ${project_root:} in YAML: state (runs, MLflow store, fixtures) lands in the project whatever the cwd.
OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)


def load_config(group: str | None, name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/<group>/<name>.yaml`` (``conf/<name>.yaml`` when ``group`` is None) with
    ``overrides`` in Hydra's override syntax."""
    config_dir = CONFIG_DIR / group if group else CONFIG_DIR
    if not (config_dir / f"{name}.yaml").exists():
        choices = sorted(p.stem for p in config_dir.glob("*.yaml"))
        raise FileNotFoundError(f"no config {config_dir.relative_to(PROJECT_ROOT)}/{name}.yaml; "
                                f"choose one of {choices}")
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))
