"""``earthsignature train``, ``finetune``, ``evaluate``: the training toolkit's Hydra entry points."""

from __future__ import annotations

import sys

import click

from earthsignature.core.config import ConfigError, load_config

_HYDRA_PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def _run_hydra(entry_point, prog: str, config: str, args: list[str]) -> None:
    """Hand the arguments to a @hydra.main function as if it were its own program, so every Hydra
    feature works: overrides, --multirun sweeps, --cfg job, --help. Plain overrides are composed first,
    so a wrong key or type is a one-line error before anything (torch, Lightning) loads."""
    if not any(arg.startswith("-") for arg in args):
        try:
            load_config(None, config, args)
        except ConfigError as error:
            raise click.ClickException(str(error)) from error
    saved = sys.argv
    sys.argv = [prog, *args]
    try:
        entry_point()
    finally:
        sys.argv = saved


@click.command(context_settings=_HYDRA_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train(args: tuple[str, ...]) -> None:
    """Train a segmentation model: Hydra overrides, e.g. `experiment=smoke trainer.max_epochs=5`."""
    from earthsignature.train.train import main as train_main

    _run_hydra(train_main, "earthsignature train", "train", list(args))


@click.command(context_settings=_HYDRA_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def finetune(args: tuple[str, ...]) -> None:
    """Fine-tune a pre-trained model on a pilot task: `pretrained=CKPT [finetune=head|full] data=...`."""
    from earthsignature.train.train import finetune_main

    _run_hydra(finetune_main, "earthsignature finetune", "finetune", list(args))


@click.command(context_settings=_HYDRA_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def evaluate(args: tuple[str, ...]) -> None:
    """Score models on the Table 2 test sets: `checkpoint=CKPT [test_sets.burnt_area.checkpoint=...]`."""
    from earthsignature.train.evaluate import main as evaluate_main

    _run_hydra(evaluate_main, "earthsignature evaluate", "evaluate", list(args))
