"""The device package under a real Python 3.7, the interpreter of AWS DeepLens: every module imports and the CLI
starts. Parsing the files as 3.7 (test_edge_core) and mypy (which checks the package as 3.11) do not catch what 3.7
evaluates at import time and lacks: a module- or class-level annotation such as ``queue.Queue[str]`` or
``list[int]``, ``from typing import Literal`` (3.8), ``functools.cached_property`` (3.8), ``str.removeprefix`` in a
module-level expression (3.9). numpy and OpenCV have no 3.7 wheels here, so a permissive stand-in takes their place:
this checks the package's own code, not theirs."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.edge_support import EDGE_DIR

STAND_IN = '''"""Stand-in for a package with no Python 3.7 wheel here: what it is asked for is a stand-in too."""


class _Anything:
    def __getattr__(self, name):
        return _Anything()

    def __call__(self, *args, **kwargs):
        return _Anything()

    def __getitem__(self, key):
        return _Anything()

    def __iter__(self):
        return iter(())


def __getattr__(name):
    return _Anything()
'''


def python37():
    """PYTHON37 if set, else a pyenv 3.7 or a python3.7 on PATH that runs."""
    candidates = [os.environ.get("PYTHON37")] + sorted(
        str(p) for p in (Path.home() / ".pyenv" / "versions").glob("3.7.*/bin/python3.7"))
    candidates.append(shutil.which("python3.7"))
    for c in filter(None, candidates):
        probe = subprocess.run([c, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 7)":
            return c
    pytest.skip("no Python 3.7 interpreter on this machine (pyenv 3.7.x, python3.7 on PATH, or PYTHON37=...)")


def device_modules():
    names = []
    for path in sorted((EDGE_DIR / "maskcam").rglob("*.py")):
        if "__pycache__" in path.parts or path.name == "__main__.py":   # __main__ runs the CLI: started below
            continue
        parts = path.relative_to(EDGE_DIR).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names + ["greengrassHelloWorld"]


@pytest.fixture(scope="module")
def run37(tmp_path_factory):
    interpreter = python37()
    stubs = tmp_path_factory.mktemp("py37-stand-ins")
    for package in ("numpy", "cv2"):
        (stubs / package).mkdir()
        (stubs / package / "__init__.py").write_text(STAND_IN)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join([str(stubs), str(EDGE_DIR)]),
           "PYTHONDONTWRITEBYTECODE": "1"}

    def run(*args):
        return subprocess.run([interpreter, "-s", *args], capture_output=True, text=True, env=env, cwd=str(stubs),
                              timeout=120)
    return run


def test_every_device_module_imports_under_python_3_7(run37):
    modules = device_modules()
    assert len(modules) >= 18 and "maskcam.runner" in modules and "maskcam.adapters.display" in modules
    program = ("import importlib, sys\n"
               "for name in sys.argv[1:]:\n"
               "    importlib.import_module(name)\n"
               "print(sys.version_info[:2], len(sys.argv) - 1)\n")
    proc = run37("-c", program, *modules)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == f"(3, 7) {len(modules)}"


def test_the_device_cli_starts_under_python_3_7(run37):
    proc = run37("-m", "maskcam", "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--model" in proc.stdout


def test_a_module_level_annotation_3_7_cannot_evaluate_is_caught(run37, tmp_path):
    """The check bites: the same import under 3.7 fails on what mypy and the 3.7 parser let through."""
    probe = tmp_path / "probe_annotation.py"
    probe.write_text("import queue\nPENDING: queue.Queue[str] = queue.Queue()\n")
    proc = run37(str(probe))
    assert proc.returncode != 0 and "not subscriptable" in proc.stderr
