"""``earthsignature train``, ``finetune``, ``evaluate``: the training toolkit's Hydra entry points."""

from __future__ import annotations

import contextlib
import importlib
import sys

import click

from earthsignature.core.config import ConfigError, load_config

_HYDRA_PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def _run_hydra(module_name: str, entry: str, config: str, args: list[str]) -> None:
    """Hand the arguments to the @hydra.main function ``entry`` of ``module_name`` as if it were its own
    program (the module, which runs it as ``__main__``), so every Hydra feature works: overrides, --multirun
    sweeps, --cfg job, --help, and Lightning's multi-process launcher, which starts the other ranks as
    ``python -m <module> <arguments>``. Plain overrides are composed first, and the module (torch, Lightning)
    imported only then, so a wrong key or type is a one-line error at once."""
    flags = {arg for arg in args if arg.startswith("-")}
    if not flags:
        try:
            cfg = load_config(None, config, args)
        except ConfigError as error:
            raise click.ClickException(str(error)) from error
        _write_fixtures(cfg)
    elif flags <= _SWEEPING:  # the jobs' common data: the config without the swept overrides
        with contextlib.suppress(ConfigError):  # Hydra reports it itself, job by job
            _write_fixtures(load_config(None, config, [a for a in args if a not in flags and not _sweeps(a)]))
    module = importlib.import_module(module_name)
    entry_point = getattr(module, entry)
    main_module = sys.modules["__main__"]
    saved = sys.argv, getattr(main_module, "__spec__", None)
    sys.argv, main_module.__spec__ = [module.__file__, *flags_first(args)], module.__spec__
    try:
        entry_point()
    finally:
        sys.argv, main_module.__spec__ = saved


_SWEEPING = {"--multirun", "-m"}


_SWEEP_FUNCTIONS = ("range(", "choice(", "glob(", "interval(")


def _sweeps(override: str) -> bool:
    """``key=a,b`` or ``key=range(...)``: an override that differs from job to job (``key=[a,b]`` does not)."""
    value, depth = override.partition("=")[2], 0
    for char in value:
        depth += (char in "[(") - (char in "])")
        if char == "," and depth == 0:
            return True
    return value.startswith(_SWEEP_FUNCTIONS)


def _write_fixtures(cfg) -> None:
    """The smoke experiments' synthetic data sets, written before training (which only reads data sets)."""
    from earthsignature.embedded.fixtures import write_missing_fixtures

    for root in write_missing_fixtures(cfg):
        click.echo(f"wrote the synthetic data set {root}", err=True)


#: Hydra's own options that take a value as the next argument (``--config-name NAME``, ``--cfg job``)
_HYDRA_VALUED = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--cfg", "-c",
                 "--package", "-p", "--info", "-i", "--shell-completion", "-sc", "--experimental-rerun"}


def flags_first(args: list[str]) -> list[str]:
    """Hydra's options before the overrides, each with its value: Hydra's parser takes the overrides as one
    positional run, so ``a=1 --multirun b=1,2`` failed ("unrecognized arguments: b=1,2") where
    ``--multirun a=1 b=1,2`` worked."""
    flags, overrides, pending = [], [], False
    for arg in args:
        if pending or arg.startswith("-"):
            flags.append(arg)
            pending = not pending and arg in _HYDRA_VALUED
        else:
            overrides.append(arg)
    return [*flags, *overrides]


@click.command(context_settings=_HYDRA_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train(args: tuple[str, ...]) -> None:
    """Train a segmentation model: Hydra overrides, e.g. `experiment=smoke trainer.max_epochs=5`."""
    _run_hydra("earthsignature.train.train", "main", "train", list(args))


@click.command(context_settings=_HYDRA_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def finetune(args: tuple[str, ...]) -> None:
    """Fine-tune a pre-trained model on a pilot task: `pretrained=CKPT [finetune=head|full] data=...`."""
    _run_hydra("earthsignature.train.finetune", "finetune_main", "finetune", list(args))


@click.command(context_settings=_HYDRA_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def evaluate(args: tuple[str, ...]) -> None:
    """Score models on the Table 2 test sets: `checkpoint=CKPT [test_sets.burnt_area.checkpoint=...]`."""
    _run_hydra("earthsignature.train.evaluate", "main", "evaluate", list(args))
