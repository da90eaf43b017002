"""A Python Lambda function whose package and pinned dependencies are bundled without Docker.

``cdk synth`` runs ``pip install --platform manylinux... --only-binary=:all: --python-version <runtime's> -t <asset>``
on the machine itself (wheels for the Lambda's Linux/x86_64 and Python version, whatever the host runs) and copies
the package source next to them, keeping its import path (``functions/<package>``). ``PythonDependenciesLayer`` bundles
only the dependencies, as a Lambda layer (``python/`` in the layer), with ``prune`` globs removing files the function
never loads (to stay under Lambda's 250 MB unzipped limit). Where pip cannot run, CDK falls
back to the same steps in the runtime's SAM build image (needs Docker). Tests skip bundling entirely
(context ``aws:cdk:bundling-stacks: []``).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

ROOT = Path(__file__).resolve().parents[2]
# Lambda's Python runtimes from 3.12 on run on Amazon Linux 2023 (glibc 2.34): manylinux_2_28 wheels work too.
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "requirements*.txt")


def python_version(runtime: lambda_.Runtime) -> str:
    name = runtime.name
    if not name.startswith("python3."):
        raise ValueError(f"{name} is not a Python 3 runtime")
    return name[len("python"):]


def pip_install_command(requirements: Path, target: str, version: str) -> list:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    return [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--only-binary=:all:", "--implementation", "cp", "--python-version", version, *platforms,
            "--target", target, "-r", str(requirements)]


def prune_tree(root: Path, patterns: Sequence[str]) -> None:
    """Removes what matches ``patterns`` (globs relative to ``root``). A pattern that matches nothing is an error, so
    a dependency upgrade that moves files is noticed instead of silently growing the asset."""
    for pattern in patterns:
        matches = list(root.glob(pattern))
        if not matches:
            raise FileNotFoundError(f"prune pattern {pattern!r} matches nothing under {root}")
        for path in matches:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def bundle_dependencies(requirements: Path, target: Path, version: str, prune: Sequence[str] = ()) -> None:
    """pip-installs ``requirements`` for the Lambda platform into ``target``, then prunes."""
    subprocess.run(pip_install_command(requirements, str(target), version), check=True)
    prune_tree(target, prune)


@jsii.implements(ILocalBundling)
class _LocalLayerBundling:
    def __init__(self, requirements: Path, version: str, prune: Sequence[str]) -> None:
        self._requirements, self._version, self._prune = requirements, version, tuple(prune)

    def try_bundle(self, output_dir: str, *_options: Any, **_kwoptions: Any) -> bool:
        bundle_dependencies(self._requirements, Path(output_dir) / "python", self._version, self._prune)
        return True


class PythonDependenciesLayer(lambda_.LayerVersion):
    """A layer holding pinned dependencies (``requirements``: a file in a directory of its own, whose contents make
    the asset hash) for ``runtime`` on x86_64, bundled without Docker like ``PythonFunction``."""

    def __init__(self, scope: Construct, id: str, *, requirements: str, runtime: lambda_.Runtime,
                 prune: Sequence[str] = (), **kwargs: Any) -> None:
        req = (ROOT / requirements).resolve()
        if not req.is_file():
            raise ValueError(f"{requirements}: no such requirements file")
        version = python_version(runtime)
        docker_steps = " && ".join(filter(None, [
            f"pip install --quiet --no-compile -r {req.name} -t /asset-output/python",
            f"(cd /asset-output/python && shopt -s globstar && rm -rf {' '.join(prune)})" if prune else "",
        ]))
        code = lambda_.Code.from_asset(
            str(req.parent),
            bundling=BundlingOptions(
                image=runtime.bundling_image or DockerImage.from_registry(f"public.ecr.aws/sam/build-{runtime.name}"),
                command=["bash", "-c", docker_steps],
                local=_LocalLayerBundling(req, version, prune),
            ),
        )
        super().__init__(scope, id, code=code, compatible_runtimes=[runtime],
                         compatible_architectures=[lambda_.Architecture.X86_64], **kwargs)


@jsii.implements(ILocalBundling)
class _LocalPipBundling:
    def __init__(self, package_dir: Path, requirements: Path | None, version: str) -> None:
        self._package_dir = package_dir
        self._requirements = requirements
        self._version = version

    def try_bundle(self, output_dir: str, *_options: Any, **_kwoptions: Any) -> bool:
        out = Path(output_dir)
        if self._requirements is not None:
            subprocess.run(pip_install_command(self._requirements, str(out), self._version), check=True)
        dest = out / self._package_dir.relative_to(ROOT)
        shutil.copytree(self._package_dir, dest, ignore=_IGNORE, dirs_exist_ok=True)
        for parent in dest.relative_to(out).parents:  # functions/__init__.py and so on
            init = out / parent / "__init__.py"
            if parent != Path(".") and not init.exists():
                init.write_text((ROOT / parent / "__init__.py").read_text()
                                if (ROOT / parent / "__init__.py").exists() else "")
        return True


class PythonFunction(lambda_.Function):
    """``lambda_.Function`` for a package under the repository (e.g. ``functions/wifi_ingest``).

    ``handler`` is the dotted path from the repository root (``functions.wifi_ingest.handler.handler``);
    ``requirements`` defaults to ``<package>/requirements.txt`` when it exists (pinned runtime dependencies; boto3
    comes with the runtime)."""

    def __init__(self, scope: Construct, id: str, *, package: str, handler: str, runtime: lambda_.Runtime,
                 requirements: str | None = None, **kwargs: Any) -> None:
        package_dir = (ROOT / package).resolve()
        if not (package_dir / "__init__.py").exists():
            raise ValueError(f"{package}: not a Python package under {ROOT}")
        req = ROOT / requirements if requirements else package_dir / "requirements.txt"
        req_path = req if req.exists() else None
        version = python_version(runtime)
        rel = package_dir.relative_to(ROOT).as_posix()
        docker_steps = " && ".join(filter(None, [
            f"pip install --quiet --no-compile -r {req.name} -t /asset-output" if req_path else "",
            f"mkdir -p /asset-output/{rel}",
            f"cp -r . /asset-output/{rel}",
            f"touch /asset-output/{Path(rel).parent.as_posix()}/__init__.py",
        ]))
        code = lambda_.Code.from_asset(
            str(package_dir),
            exclude=["__pycache__", "*.pyc", "tests"],
            bundling=BundlingOptions(
                image=runtime.bundling_image or DockerImage.from_registry(f"public.ecr.aws/sam/build-{runtime.name}"),
                command=["bash", "-c", docker_steps],
                local=_LocalPipBundling(package_dir, req_path, version),
            ),
        )
        super().__init__(scope, id, code=code, handler=handler, runtime=runtime,
                         architecture=lambda_.Architecture.X86_64, **kwargs)
