"""``python -m earthsignature.train.finetune``: fine-tuning's own program (Lightning's multi-process launcher
runs it again for every rank)."""

from earthsignature.train.train import finetune_main

if __name__ == "__main__":
    finetune_main()
