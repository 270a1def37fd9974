"""``python -m earthsignature.cli``: the same command as ``earthsignature``."""

from earthsignature.cli import main

main()
