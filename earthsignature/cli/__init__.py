"""The ``earthsignature`` command: assembles the command groups each part owns.

Every group imports its part lazily, so ``earthsignature serve --help`` works in a service-only
install (no torch) and starts fast.
"""

from __future__ import annotations

import click

from earthsignature.cli import api, data, db, demo, ml, model, monitor, query, store


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """EarthSignature: Sentinel-2 land-cover segmentation toolkit and services."""


for command in (db.db, data.classes, data.fixtures, ml.train, ml.finetune, ml.evaluate, model.export_command,
                model.model, api.certs, api.serve, store.store, query.query, monitor.monitor, demo.demo):
    main.add_command(command)
