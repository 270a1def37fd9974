"""Training throughput: our LightningModule next to TorchGeo's SemanticSegmentationTask, same run.

Three contenders train on the same in-memory batches (4-band 120 x 120 patches, 44 classes) for the
same number of optimizer steps with the same Lightning Trainer settings:

* ``earthsignature``: our SegmentationModule with the seed's UNet;
* ``torchgeo-same-net``: TorchGeo's SemanticSegmentationTask holding that very UNet (so the ratio
  isolates the training-step machinery: loss, metrics, logging);
* ``torchgeo-smp-unet``: TorchGeo's task with its own default family, an smp UNet on ResNet-18.

Samples per second exclude the warm-up steps. Prints a table and writes JSON next to this script.
    python benchmarks/train_throughput.py [--base-width 32] [--batch-size 16] [--steps 6]
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
from results_file import write_results  # benchmarks/results_file.py, beside this script
from torch.utils.data import DataLoader, Dataset
from torchgeo.trainers import SemanticSegmentationTask

from earthsignature.core.nomenclature import clc_level3
from earthsignature.models.unet import UNet
from earthsignature.train.module import SegmentationModule


class RandomPatches(Dataset):
    def __init__(self, n: int, channels: int = 4, size: int = 120, classes: int = 44, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, channels, size, size, generator=generator)
        self.masks = torch.randint(0, classes, (n, size, size), generator=generator)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "mask": self.masks[i]}


class StepTimer(L.Callback):
    """Wall time of each training step (forward, backward, optimizer) after ``warmup`` steps."""

    def __init__(self, warmup: int):
        self.warmup, self.times, self._start = warmup, [], 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= self.warmup:
            self.times.append(time.perf_counter() - self._start)


class TorchGeoWithOurUNet(SemanticSegmentationTask):
    """TorchGeo's task (loss, metrics, logging, optimizer) around our UNet."""

    def __init__(self, base_width: int, depth: int, **kwargs) -> None:
        self.unet_shape = (base_width, depth)  # read by configure_models, which __init__ calls
        super().__init__(**kwargs)

    def configure_models(self) -> None:
        self.model = UNet(self.hparams["in_channels"], self.hparams["num_classes"], *self.unet_shape)


def measure(module: L.LightningModule, data: Dataset, batch_size: int, steps: int, warmup: int) -> float:
    timer = StepTimer(warmup)
    trainer = L.Trainer(accelerator="cpu", max_steps=steps + warmup, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[timer])
    trainer.fit(module, DataLoader(data, batch_size=batch_size, shuffle=False))
    return batch_size * len(timer.times) / sum(timer.times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    # one batch more than the steps taken: no epoch ends, so no epoch-end work (schedulers) is timed
    data = RandomPatches(args.batch_size * (args.steps + args.warmup + 1))
    stats = {"bands": ["B02", "B03", "B04", "B08"], "minimum": 0.0, "maximum": 1.0, "mean": [0.0] * 4}
    contenders = {
        "earthsignature": lambda: SegmentationModule(
            model={"name": "unet", "base_width": args.base_width, "depth": args.depth},
            nomenclature_name="clc_level3", classes=clc_level3().to_records(), bands=stats["bands"],
            normalization=stats),
        "torchgeo-same-net": lambda: TorchGeoWithOurUNet(
            in_channels=4, num_classes=44, ignore_index=255, lr=1e-3, base_width=args.base_width,
            depth=args.depth),
        "torchgeo-smp-unet": lambda: SemanticSegmentationTask(
            model="unet", backbone="resnet18", weights=None, in_channels=4, num_classes=44,
            ignore_index=255, lr=1e-3),
    }
    rows = []
    for name, make in contenders.items():
        L.seed_everything(0, verbose=False)
        module = make()
        parameters = sum(p.numel() for p in module.parameters())
        rows.append({"contender": name, "samples_per_s": measure(module, data, args.batch_size, args.steps,
                                                                 args.warmup), "parameters": parameters})
    baseline = rows[1]["samples_per_s"]
    print(f"\ntraining throughput, batch {args.batch_size} x 4 x 120 x 120, {args.steps} timed steps, "
          f"{torch.get_num_threads()} threads")
    print(f"{'contender':<20} {'params':>12} {'samples/s':>10} {'vs torchgeo-same-net':>21}")
    for row in rows:
        row["ratio_to_torchgeo_same_net"] = row["samples_per_s"] / baseline
        print(f"{row['contender']:<20} {row['parameters']:>12,} {row['samples_per_s']:>10.2f} "
              f"{row['ratio_to_torchgeo_same_net']:>20.2f}x")
    write_results("train_throughput", {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
