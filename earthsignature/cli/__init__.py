"""The ``earthsignature`` command: assembles the command groups each part owns.

Every group imports its part lazily, so ``earthsignature serve --help`` works in a service-only
install (no torch) and starts fast. An unexpected error is one line on the terminal (its traceback in the
log with ``--log-level debug``), never a traceback alone.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from earthsignature.cli import api, data, db, demo, ml, model, monitor, query, store

log = logging.getLogger("earthsignature")
LOG_LEVELS = ("debug", "info", "warning", "error")


class _Command(click.Group):
    """The top-level group: errors the commands did not expect become one clear line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit,
                KeyboardInterrupt):
            raise
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as Unix tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            raise click.exceptions.Exit(141) from None  # 128 + SIGPIPE
        except Exception as error:
            log.debug("unexpected error", exc_info=error)
            raise click.ClickException(f"{type(error).__name__}: {error} (--log-level debug shows where)") from error


@click.group(cls=_Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="earthsignature", prog_name="earthsignature")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="warning", show_default=True,
              help="what the parts log to the terminal")
def main(log_level: str) -> None:
    """EarthSignature: Sentinel-2 land-cover segmentation toolkit and services."""
    configure_logging(log_level)


#: Libraries that log at INFO whatever the level asked, with a handler of their own when imported first.
_CHATTY = ("lightning", "lightning_fabric", "pytorch_lightning")


def configure_logging(level: str) -> None:
    """One handler for every part and library, at the chosen level: each record printed once, and none below
    the level (Lightning sets its loggers to INFO and, when imported before this, adds its own handler)."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for handler in logging.getLogger().handlers:
        handler.setLevel(level.upper())
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in _CHATTY:
            chatty = logging.getLogger(name)
            chatty.handlers.clear()
            chatty.propagate = True


for command in (db.db, data.classes, data.fixtures, data.data_group, ml.train, ml.finetune, ml.evaluate,
                model.export_command, model.model, api.certs, api.serve, store.store, query.query, monitor.monitor,
                demo.demo):
    main.add_command(command)
