"""``earthsignature train``, ``finetune``, ``evaluate``: the training toolkit's Hydra entry points."""

from __future__ import annotations

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
    if not any(arg.startswith("-") for arg in args):
        try:
            load_config(None, config, args)
        except ConfigError as error:
            raise click.ClickException(str(error)) from error
    module = importlib.import_module(module_name)
    entry_point = getattr(module, entry)
    main_module = sys.modules["__main__"]
    saved = sys.argv, getattr(main_module, "__spec__", None)
    sys.argv, main_module.__spec__ = [module.__file__, *flags_first(args)], module.__spec__
    try:
        entry_point()
    finally:
        sys.argv, main_module.__spec__ = saved


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
