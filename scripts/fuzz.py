#!/usr/bin/env python3
"""The longer fuzz run (``make fuzz MINUTES=10``, or ``python -m scripts.fuzz --minutes 10`` from the repository
root): the property-based tests (marker ``property``) again and again, each round with a new random Hypothesis seed,
until the time is up; a failure stops the run and Hypothesis keeps the failing example in ``.hypothesis/`` so the next
``make test`` replays it. Prints rounds, examples and failures."""
from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("-k", dest="keyword", help="only tests matching this pytest -k expression")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.minutes * 60
    rounds = passed = 0
    while time.monotonic() < deadline:
        seed = random.randrange(2**32)
        command = [sys.executable, "-m", "pytest", "-m", "property", "--ignore=tests/model", "-q", "-x",
                   "--no-header", f"--hypothesis-seed={seed}", *(["-k", args.keyword] if args.keyword else [])]
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "HYPOTHESIS_PROFILE": "fuzz"})
        rounds += 1
        counts = re.search(r"(\d+) passed", proc.stdout)
        passed += int(counts.group(1)) if counts else 0
        left = max(0.0, deadline - time.monotonic())
        print(f"fuzz: round {rounds} seed {seed}: exit {proc.returncode}, {passed} test runs so far, "
              f"{left / 60:.1f} min left", flush=True)
        if proc.returncode == 5:
            print("fuzz: no tests carry the `property` marker", file=sys.stderr)
            return 1
        if proc.returncode != 0:
            print(proc.stdout[-6000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
            print(f"fuzz: FAILED in round {rounds} (seed {seed}); the example is kept in .hypothesis/",
                  file=sys.stderr)
            return 1
    print(f"fuzz: {rounds} rounds, {passed} property-test runs, no failure in {args.minutes:g} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
