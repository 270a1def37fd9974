"""``earthsignature demo``: the main job on embedded defaults."""

from __future__ import annotations

import click

from earthsignature.cli.common import config_option, overrides_argument, private_cluster


@click.command()
@click.option("--keep-running", is_flag=True, help="leave the database and the gRPC server running afterwards")
@config_option
@overrides_argument
def demo(keep_running: bool, config: str, overrides: tuple[str, ...]) -> None:
    """Run the main job on embedded defaults: data, training, model service, database service, monitor,
    and a pilot's queries."""
    from earthsignature.embedded.demo import DemoSettings, run_demo

    cfg, cluster = private_cluster(config, overrides)
    run_demo(cfg, cluster, list(overrides), DemoSettings(config=config, keep_running=keep_running))
