"""Prints each synthesized stack with its resource counts by type (``make synth`` runs it; the code is
infra/assembly.py). From the repository root:

    python -m scripts.synth_summary cdk.out
"""
from __future__ import annotations

import sys
from pathlib import Path

from infra.assembly import summarize


def main(argv: list | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else "cdk.out")
    if not (target / "manifest.json").exists():
        sys.exit(f"error: {target} is not a cloud assembly (no manifest.json); run `make synth` first")
    print(summarize(target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
