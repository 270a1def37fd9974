"""Training you can follow without a terminal: one line per epoch (epoch, losses, validation metrics, seconds)
where Lightning's progress bar would be unreadable (CI, the demo's logs, a file), the bar in a terminal."""

from __future__ import annotations

import sys
import time

from lightning.pytorch import Callback, LightningModule, Trainer

#: The metrics an epoch line shows, in this order, when the run logs them.
SHOWN = ("train_loss", "val_loss", "val_miou", "val_oa")


def wants_epoch_lines(progress_bar: bool) -> bool:
    """Epoch lines instead of the bar: when the bar is switched off, or nobody watches a terminal."""
    return not progress_bar or not sys.stderr.isatty()


class EpochLines(Callback):
    """Prints ``epoch 3/25: train_loss 1.2345, val_loss 1.1111, val_miou 0.4567 (12.3 s)`` to stderr."""

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._started = time.monotonic()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        shown = ", ".join(f"{name} {float(metrics[name]):.4f}" for name in SHOWN if name in metrics)
        seconds = time.monotonic() - getattr(self, "_started", time.monotonic())
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {shown} ({seconds:.1f} s)", file=sys.stderr,
              flush=True)
