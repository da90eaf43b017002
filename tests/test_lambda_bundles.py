"""The bundled Lambda code as CDK uploads it, run under the template's Python runtime, in isolation.

The app is synthesized once WITH bundling (``cdk synth`` bundles; the other tests skip it), then for the inference
function (``greengrassHelloWorld`` + its dependencies layer) and the Wi-Fi ingest function:

- the asset directories are the ones the template's ``aws:asset:path`` metadata names (the same hash as the
  ``S3Key`` CloudFormation deploys);
- the layer's and the Wi-Fi asset's wheels must be built for the template's ``Runtime`` (CPython ABI, manylinux
  x86_64 with a glibc Amazon Linux 2023 has), and function + layers must fit Lambda's 250 MB unzipped limit;
- the handler runs in a subprocess of the runtime's interpreter (``python3.X -I -S -B``: no site-packages, no
  environment paths, no bytecode written into the asset) whose ``sys.path`` is what Lambda gives it: the function's
  asset, the layer's ``python/``, the standard library and a directory holding the boto3 the runtime provides
  (pinned like ``requirements.txt``). Every module the handler loaded must come from one of those directories.
  AWS calls go to a moto server in this process (``AWS_ENDPOINT_URL``).

The interpreter must exist: when it does not, the test FAILS saying which one and how to install it (a runtime
whose bundle was never executed is exactly the defect this file exists to catch).
"""
from __future__ import annotations

import glob
import io
import json
import mmap
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace

import boto3
import cv2
import pytest
import requests
from moto.core import DEFAULT_ACCOUNT_ID
try:
    from moto.server import ThreadedMotoServer
except ImportError as err:  # moto's server mode needs flask and flask-cors (moto[server] without the other extras)
    raise ImportError(f"{err}: the moto server these tests run needs flask and flask-cors "
                      "(requirements-dev.txt)") from err

import aws_cdk as cdk
from maskcam import schema
from functions.wifi_ingest import sample
from infra.app_stacks import add_gates, build_stacks
from infra.settings import Settings
from tests.conftest import ROOT, cdk_json_context
from tests.edge_support import stream_frame

pytestmark = pytest.mark.slow

LAMBDA_UNZIPPED_LIMIT = 262_144_000   # 250 MB: function code + all layers, unzipped
AL2023_GLIBC = (2, 34)                # Lambda python3.12+ runs on Amazon Linux 2023
DATA_BUCKET = "maskcam-data"          # the data bucket's name is generated at deploy; any name does here
DEVICE = "cam-1"
FRAME_KEY = f"frames/{DEVICE}/2026/11/27/100000.jpg"
EVENT_TIME = "2026-11-27T10:00:00Z"
EVENT_MS = 1795773600000
WIFI_KEY = "raw/2020/전국무료와이파이표준데이터.csv"

# Runs under the Lambda runtime's interpreter with -I -S: only the standard library is importable until sys.path is
# set to Lambda's order (code, layers, standard library, runtime-provided packages).
DRIVER = r'''
import importlib, json, sys, time, traceback
spec = json.load(open(sys.argv[1]))
stdlib = list(sys.path)
sys.path[:] = spec["code"] + stdlib + spec["runtime"]


class Context(object):
    """What the Lambda runtime passes as ``context``."""
    function_name = spec["function_name"]
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:%s:%s:function:%s" % (spec["region"], spec["account"], function_name)
    memory_limit_in_mb = spec["memory"]
    aws_request_id = "req-bundle-1"
    log_group_name = "/aws/lambda/" + function_name
    log_stream_name = "2026/11/27/[$LATEST]bundle"
    _deadline = time.time() + spec["timeout"]

    def get_remaining_time_in_millis(self):
        return int(max(0, self._deadline - time.time()) * 1000)


report = {"executable": sys.executable, "version": list(sys.version_info[:3]), "flags": {
    "isolated": sys.flags.isolated, "no_site": sys.flags.no_site, "dont_write_bytecode": sys.flags.dont_write_bytecode},
    "stdlib": stdlib, "sys_path": list(sys.path)}
try:
    module_name, attr = spec["handler"].rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), attr)
    report["result"] = handler(spec["event"], Context())
except BaseException:
    report["error"] = traceback.format_exc()
report["modules"] = dict((name, getattr(m, "__file__", None)) for name, m in sorted(sys.modules.items())
                         if getattr(m, "__file__", None))
with open(sys.argv[2], "w") as out:
    json.dump(report, out, default=str)
'''


# --- the synthesized app -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """The real app synthesized with bundling for the stacks holding Lambda code (as ``cdk synth`` does)."""
    context = cdk_json_context()
    project = context["project"]
    bundling = [f"{project}-device", f"{project}-wifi"]
    app = cdk.App(context={**context, "aws:cdk:bundling-stacks": bundling,
                           "aws:cdk:enable-asset-metadata": True},   # the CLI's defaults
                  outdir=str(tmp_path_factory.mktemp("cdk.out.bundled")))
    settings = Settings.from_context(app.node.try_get_context)
    build_stacks(app, settings)
    add_gates(app)
    assembly = app.synth()
    return SimpleNamespace(assembly=assembly, settings=settings, directory=Path(assembly.directory),
                           templates={name: assembly.get_stack_by_name(name).template for name in bundling},
                           device=bundling[0], wifi=bundling[1])


def asset_dir(bundled, resource: dict) -> Path:
    """The directory CDK zips and uploads for a Lambda function or layer, checked against the deployed S3 key."""
    metadata = resource.get("Metadata", {})
    assert "aws:asset:path" in metadata, f"no aws:asset:path metadata on {resource['Type']}"
    path = Path(metadata["aws:asset:path"])
    path = path if path.is_absolute() else bundled.directory / path
    assert path.is_dir(), f"{path} is not a directory of the cloud assembly"
    code = resource["Properties"][metadata["aws:asset:property"]]
    assert code["S3Key"] == path.name[len("asset."):] + ".zip", "the asset directory is not what the template deploys"
    return path


def lambda_function(bundled, stack: str, handler: str) -> SimpleNamespace:
    """The function of ``stack`` with ``handler``: logical id, properties, asset dir and layer asset dirs."""
    resources = bundled.templates[stack]["Resources"]
    found = [(lid, r) for lid, r in resources.items()
             if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("Handler") == handler]
    assert len(found) == 1, f"{stack}: expected one function with handler {handler}, found {[f[0] for f in found]}"
    logical_id, resource = found[0]
    layers = []
    for ref in resource["Properties"].get("Layers", []):
        assert set(ref) == {"Ref"}, f"{logical_id}: layer {ref} is not a layer of the same stack"
        layer = resources[ref["Ref"]]
        assert layer["Type"] == "AWS::Lambda::LayerVersion"
        layers.append(SimpleNamespace(logical_id=ref["Ref"], properties=layer["Properties"],
                                      directory=asset_dir(bundled, layer)))
    return SimpleNamespace(logical_id=logical_id, properties=resource["Properties"],
                           directory=asset_dir(bundled, resource), layers=layers,
                           runtime=resource["Properties"]["Runtime"], region=bundled.settings.region)


@pytest.fixture(scope="module")
def inference(bundled):
    fn = lambda_function(bundled, bundled.device, "greengrassHelloWorld.function_handler")
    assert len(fn.layers) == 1, "the inference function gets numpy/OpenCV/ONNX Runtime from exactly one layer"
    return fn


@pytest.fixture(scope="module")
def wifi(bundled):
    return lambda_function(bundled, bundled.wifi, "functions.wifi_ingest.handler.handler")


# --- wheels for the runtime ----------------------------------------------------------------------------------------

_GLIBC_OF_POLICY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def _glibc(platform_tag: str):
    match = re.match(r"^manylinux_(\d+)_(\d+)_x86_64$", platform_tag)
    if match:
        return int(match.group(1)), int(match.group(2))
    policy = platform_tag[:-len("_x86_64")] if platform_tag.endswith("_x86_64") else None
    return _GLIBC_OF_POLICY.get(policy)


def wheel_problems(site: Path, runtime: str) -> list:
    """What in ``site`` (a pip --target directory) was not built for ``runtime`` on Lambda's x86_64 Linux."""
    minor = int(runtime[len("python3."):])
    cp = f"cp3{minor}"
    problems = []
    wheels = sorted(site.glob("*.dist-info/WHEEL"))
    if not wheels:
        problems.append(f"{site}: no *.dist-info/WHEEL (not a pip install?)")
    for wheel in wheels:
        for line in wheel.read_text().splitlines():
            if not line.startswith("Tag:"):
                continue
            tag = line.split(":", 1)[1].strip()
            interpreter, abi, plat = tag.split("-")
            where = f"{wheel.parent.name}: {tag}"
            if plat != "any":
                glibc = _glibc(plat)
                if glibc is None:
                    problems.append(f"{where}: not a manylinux x86_64 wheel")
                elif glibc > AL2023_GLIBC:
                    problems.append(f"{where}: needs glibc {glibc}, Amazon Linux 2023 has {AL2023_GLIBC}")
            if abi == "abi3":
                if not (interpreter.startswith("cp3") and int(interpreter[3:]) <= minor):
                    problems.append(f"{where}: stable ABI of a newer Python than {runtime}")
            elif abi != "none" and (abi != cp or interpreter != cp):
                problems.append(f"{where}: built for {interpreter}/{abi}, the runtime is {cp}")
    for so in site.rglob("*.cpython-*.so"):
        match = re.search(r"\.cpython-(\d+)-x86_64-linux-gnu\.so$", so.name)
        if not match or match.group(1) != f"3{minor}":
            problems.append(f"{so.relative_to(site)}: extension module not for CPython 3.{minor} on x86_64 Linux")
    return problems


# Shared libraries an Amazon Linux 2023 Lambda runtime has outside the code and layers (glibc, the GCC runtime,
# zlib); manylinux policies also allow libGL, libX11 and the like, which Lambda lacks.
LAMBDA_SYSTEM_LIBRARIES = {"ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1",
                           "libpthread.so.0", "libutil.so.1", "libresolv.so.2", "libstdc++.so.6", "libgcc_s.so.1",
                           "libz.so.1"}


def elf_needed(path: Path) -> list:
    """DT_NEEDED entries of an ELF64 little-endian shared object ([] for anything else)."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as elf:
        if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
            return []
        shoff, = struct.unpack_from("<Q", elf, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
        needed = []
        for _name, kind, _flags, _addr, offset, size, link, _info, _align, _entsize in sections:
            if kind != 6:   # SHT_DYNAMIC
                continue
            strtab = sections[link][4]
            for pos in range(offset, offset + size, 16):
                tag, value = struct.unpack_from("<qQ", elf, pos)
                if tag == 0:
                    break
                if tag == 1:   # DT_NEEDED
                    end = elf.find(b"\0", strtab + value)
                    needed.append(elf[strtab + value:end].decode())
        return needed


def foreign_libraries(*roots: Path) -> dict:
    """Shared libraries the ELF files under ``roots`` need that neither the bundle nor Lambda's system has."""
    files = [p for root in roots for p in root.rglob("*.so*") if p.is_file()]
    bundled = {p.name for p in files}
    missing = {}
    for so in files:
        for lib in elf_needed(so):
            if lib not in bundled and lib not in LAMBDA_SYSTEM_LIBRARIES:
                missing.setdefault(lib, []).append(str(so))
    return missing


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_inference_layer_and_wifi_asset_are_built_for_the_template_runtime(inference, wifi):
    assert inference.runtime == wifi.runtime
    layer = inference.layers[0]
    assert layer.properties["CompatibleRuntimes"] == [inference.runtime]
    assert layer.properties["CompatibleArchitectures"] == ["x86_64"]
    site = layer.directory / "python"
    assert sorted(p.name for p in layer.directory.iterdir()) == ["python"], "a Python layer unpacks to /opt/python"
    tag = f"cpython-3{inference.runtime[len('python3.'):]}-x86_64-linux-gnu.so"
    for package in ("numpy", "onnxruntime"):
        assert list((site / package).rglob(f"*.{tag}")), f"no {package} extension module *.{tag} in the layer"
    assert (site / "cv2").is_dir() and list((site / "cv2").glob("cv2*.so"))
    assert wheel_problems(site, inference.runtime) == []
    assert list((wifi.directory / "pyarrow").glob(f"*.{tag}")), f"no pyarrow extension module *.{tag}"
    assert wheel_problems(wifi.directory, wifi.runtime) == []


def test_function_code_plus_layers_fit_lambdas_unzipped_limit(inference, wifi):
    inference_total = tree_size(inference.directory) + sum(tree_size(layer.directory) for layer in inference.layers)
    assert inference_total < LAMBDA_UNZIPPED_LIMIT, f"inference function + layer: {inference_total} bytes"
    assert tree_size(wifi.directory) < LAMBDA_UNZIPPED_LIMIT


def test_native_libraries_come_from_the_bundle_or_the_lambda_system(inference, wifi):
    """This machine (Debian) has libraries Lambda has not; every library an extension module links must be in the
    bundle (the wheels' *.libs) or among the few Amazon Linux 2023 provides."""
    layer = inference.layers[0].directory
    assert elf_needed(next(layer.rglob("_multiarray_umath.*.so")))   # the reader finds numpy's dependencies
    assert foreign_libraries(inference.directory, layer) == {}
    assert foreign_libraries(wifi.directory) == {}


def test_wheel_check_flags_wheels_of_another_python(tmp_path):
    """The check above can fail: a cp314 extension and wheel tag in a python3.13 layer are reported."""
    (tmp_path / "pkg-1.0.dist-info").mkdir()
    (tmp_path / "pkg-1.0.dist-info" / "WHEEL").write_text("Tag: cp314-cp314-manylinux_2_28_x86_64\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "_ext.cpython-314-x86_64-linux-gnu.so").write_bytes(b"")
    problems = wheel_problems(tmp_path, "python3.13")
    assert len(problems) == 2 and "cp314" in problems[0] and "_ext.cpython-314" in problems[1]
    (tmp_path / "pkg-1.0.dist-info" / "WHEEL").write_text("Tag: cp313-cp313-manylinux_2_39_x86_64\n")
    assert "needs glibc (2, 39)" in wheel_problems(tmp_path, "python3.13")[0]


# --- the runtime's interpreter and what it provides ---------------------------------------------------------------

def _pyenv_root():
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    return Path.home() / ".pyenv"


def _probe(python: str):
    try:
        out = subprocess.run([python, "-I", "-S", "-c",
                              ("import sys, platform; print(sys.version_info[0], sys.version_info[1], "
                               "sys.implementation.name, platform.machine())")],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.split() if out.returncode == 0 else None


def runtime_interpreter(runtime: str) -> str:
    """The CPython interpreter of a Lambda runtime (``python3.13`` -> a 3.13 ``python3.13``); fails the test when
    there is none, naming what to install."""
    version = runtime[len("python"):]
    releases = [d for d in glob.glob(str(_pyenv_root() / "versions" / f"{version}.*"))
                if re.match(r"^\d+\.\d+\.\d+$", os.path.basename(d))]
    releases.sort(key=lambda d: tuple(int(n) for n in os.path.basename(d).split(".")), reverse=True)
    candidates = [os.path.join(d, "bin", f"python{version}") for d in releases]
    if shutil.which(f"python{version}"):
        candidates.append(shutil.which(f"python{version}"))
    tried = []
    for python in candidates:
        probe = _probe(python)
        if probe and probe[:3] == version.split(".") + ["cpython"]:
            if probe[3] != "x86_64":
                pytest.fail(f"{python} runs on {probe[3]}; the {runtime} bundle holds x86_64 Linux wheels and can "
                            "only be executed on an x86_64 machine")
            return python
        tried.append(f"{python} ({' '.join(probe) if probe else 'does not run'})")
    pytest.fail(f"The template's Lambda runtime is {runtime} but no CPython {version} interpreter was found "
                f"(looked in {_pyenv_root() / 'versions'}/{version}.* and for python{version} on PATH"
                f"{'; tried ' + ', '.join(tried) if tried else ''}). Install it with `pyenv install {version}` "
                f"(or put python{version} on PATH). If {version} cannot be installed on this machine, the bundle "
                f"cannot be tested here: set lambda_runtime to a runtime whose interpreter can be.", pytrace=False)


def pinned(requirements: Path, name: str) -> str:
    for line in requirements.read_text().splitlines():
        match = re.match(rf"^{re.escape(name)}==([^\s#;]+)", line.strip(), re.IGNORECASE)
        if match:
            return match.group(1)
    raise AssertionError(f"{name} is not pinned (==) in {requirements}")


class LambdaRuntime:
    """The runtime's interpreter and the packages the runtime provides, found (and installed) on first use, which is
    in a test's call phase: a missing interpreter fails the tests that need it rather than erroring their setup."""

    def __init__(self, name: str, cache_dir) -> None:
        self.name, self._cache_dir = name, cache_dir

    @cached_property
    def python(self) -> str:
        return runtime_interpreter(self.name)

    @cached_property
    def packages(self) -> Path:
        """A directory with the boto3 the Lambda runtime provides (version as pinned in requirements.txt), installed
        by the runtime's interpreter; pure Python, kept across runs in pytest's cache directory (when it is on)."""
        version = pinned(ROOT / "requirements.txt", "boto3")
        target = self._cache_dir(f"lambda-runtime-{self.name}-boto3-{version}")
        if (target / ".complete").exists():
            return target
        staging = Path(f"{target}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        proc = subprocess.run([self.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                               "--no-compile", "--only-binary=:all:", "--target", str(staging), f"boto3=={version}"],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"pip install boto3=={version} for {self.python} failed:\n{proc.stderr[-3000:]}"
        (staging / ".complete").write_text(f"boto3=={version} for {self.python}\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        return target


@pytest.fixture(scope="module")
def runtime(request, tmp_path_factory, inference, wifi):
    assert inference.runtime == wifi.runtime
    cache = getattr(request.config, "cache", None)   # None with -p no:cacheprovider

    def cache_dir(name: str) -> Path:
        return Path(cache.mkdir(name)) if cache is not None else tmp_path_factory.mktemp(name, numbered=False)

    return LambdaRuntime(inference.runtime, cache_dir)


# --- AWS in this process --------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_server():
    """A moto server on localhost, in this process (its backends are readable here); state reset when done."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    yield url
    requests.post(f"{url}/moto-api/reset", timeout=10)
    server.stop()


@pytest.fixture
def aws(moto_server):
    """The moto server with empty state: ``url``, ``client(service)``."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()

    def client(service):
        return boto3.client(service, region_name="us-east-1", endpoint_url=moto_server,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    return SimpleNamespace(url=moto_server, client=client)


def resolve(value, region: str):
    """A template value with the pseudo parameters Lambda environments use resolved for moto's account."""
    pseudo = {"AWS::AccountId": DEFAULT_ACCOUNT_ID, "AWS::Region": region, "AWS::Partition": "aws",
              "AWS::URLSuffix": "amazonaws.com"}
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in pseudo:
        return pseudo[value["Ref"]]
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(resolve(p, region) for p in parts)
    raise AssertionError(f"cannot resolve {value!r} for a local run")


def invoke(fn, runtime, aws, tmp_path, event, extra_env=None, layers=None, expect_error=False):
    """Runs ``fn``'s handler on ``event`` in the runtime's interpreter, Lambda's way; returns the driver's report
    (``layers``: the layers to put on the path instead of the function's)."""
    assert fn.runtime == runtime.name
    python = runtime.python
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    layers = fn.layers if layers is None else layers
    spec = {"code": [str(fn.directory)] + [str(layer.directory / "python") for layer in layers],
            "runtime": [str(runtime.packages)], "handler": fn.properties["Handler"], "event": event,
            "function_name": fn.properties.get("FunctionName", fn.logical_id), "region": fn.region,
            "account": DEFAULT_ACCOUNT_ID, "memory": fn.properties.get("MemorySize", 128),
            "timeout": fn.properties.get("Timeout", 3), "runtime_name": fn.runtime, "driver": str(driver)}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    home = tmp_path / "home"
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    env = {k: resolve(v, fn.region) for k, v in fn.properties.get("Environment", {}).get("Variables", {}).items()}
    env.update({
        # what the Lambda runtime sets
        "AWS_REGION": fn.region, "AWS_DEFAULT_REGION": fn.region, "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": spec["function_name"], "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec["memory"]),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "LAMBDA_TASK_ROOT": spec["code"][0], "TZ": ":UTC",
        "LANG": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin",
        # the execution role's credentials -> fakes; every endpoint -> moto; nothing read from this machine's ~/.aws
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_ENDPOINT_URL": aws.url, "HOME": str(home), "AWS_CONFIG_FILE": str(home / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "TMPDIR": str(home / "tmp"),   # Lambda's private /tmp
        **(extra_env or {}),
    })
    before = sorted(p for d in spec["code"] for p in Path(d).rglob("*"))
    out = tmp_path / "report.json"
    started = time.monotonic()
    proc = subprocess.run([python, "-I", "-S", "-B", str(driver), str(tmp_path / "spec.json"), str(out)],
                          env=env, cwd=str(home), capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0 and out.exists(), f"driver exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert elapsed < spec["timeout"], f"cold start + invocation: {elapsed:.1f} s, the timeout is {spec['timeout']} s"
    report = json.loads(out.read_text())
    report["stdout"], report["stderr"] = proc.stdout, proc.stderr
    if expect_error:
        assert "error" in report, f"the handler did not raise: {report.get('result')}"
    else:
        assert "error" not in report, f"the handler raised under {python}:\n{report['error']}\n{proc.stderr[-3000:]}"
    assert sorted(p for d in spec["code"] for p in Path(d).rglob("*")) == before, \
        "the handler wrote into its code or layer directory (read-only /var/task, /opt on Lambda)"
    check_isolation(report, spec)
    return report


def check_isolation(report, spec):
    """The subprocess ran the runtime's interpreter without site and took every module from Lambda's paths."""
    assert report["flags"] == {"isolated": 1, "no_site": 1, "dont_write_bytecode": 1}
    assert f"python{report['version'][0]}.{report['version'][1]}" == spec["runtime_name"], report["version"]
    prefix = Path(report["executable"]).resolve().parents[1]
    for entry in report["stdlib"]:
        assert Path(entry).resolve().is_relative_to(prefix) and "site-packages" not in entry, entry
    assert report["sys_path"] == spec["code"] + report["stdlib"] + spec["runtime"]
    allowed = [Path(p).resolve() for p in report["sys_path"]]
    strays = {name: path for name, path in report["modules"].items()
              if path != spec["driver"] and not any(Path(path).resolve().is_relative_to(root) for root in allowed)}
    assert strays == {}, f"modules loaded from outside Lambda's paths: {strays}"


def origin(report, module: str) -> Path:
    assert module in report["modules"], f"{module} was never imported"
    return Path(report["modules"][module]).resolve()


# --- the handlers -------------------------------------------------------------------------------------------------

def eventbridge_event(bucket, key, version_id=None, etag="x"):
    return {"version": "0", "id": "e1", "detail-type": "Object Created", "source": "aws.s3",
            "account": DEFAULT_ACCOUNT_ID, "time": EVENT_TIME, "region": "us-east-1",
            "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {"version": "0", "bucket": {"name": bucket},
                       "object": {"key": key, "size": 1, "etag": etag, "version-id": version_id, "sequencer": "0"},
                       "request-id": "r", "requester": DEFAULT_ACCOUNT_ID, "reason": "PutObject"}}


def stage_frame(inference, aws, model_export) -> SimpleNamespace:
    """Moto state for one frame: the model export published where the function's environment says, a real JPEG
    frame (two faces) under the frames prefix, no IoT messages yet."""
    from moto.iotdata.models import iotdata_backends

    env = inference.properties["Environment"]["Variables"]
    model_bucket = resolve(env["MASKCAM_CLOUD_MODEL_BUCKET"], inference.region)
    prefix = env["MASKCAM_CLOUD_MODEL_PREFIX"]
    s3 = aws.client("s3")
    for bucket in (model_bucket, DATA_BUCKET):
        s3.create_bucket(Bucket=bucket)
    manifest = json.loads((model_export / "manifest.json").read_text())
    for name in [*manifest["files"].values(), "manifest.json"]:   # manifest last, as `model publish` does
        s3.upload_file(str(model_export / name), model_bucket, prefix + name)
    key = env["MASKCAM_CLOUD_FRAMES_PREFIX"] + FRAME_KEY[len("frames/"):]
    ok, jpeg = cv2.imencode(".jpg", stream_frame())
    assert ok
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=jpeg.tobytes(), ContentType="image/jpeg")
    backend = iotdata_backends[DEFAULT_ACCOUNT_ID][inference.region]
    backend.published_payloads.clear()
    return SimpleNamespace(env=env, manifest=manifest, event=eventbridge_event(DATA_BUCKET, key), backend=backend)


def model_dir_env(inference, tmp_path) -> dict:
    """The model goes to /tmp/maskcam-model by default (the template does not set it): this run's private /tmp."""
    assert "MASKCAM_CLOUD_MODEL_DIR" not in inference.properties["Environment"]["Variables"]
    return {"MASKCAM_CLOUD_MODEL_DIR": str(tmp_path / "home" / "tmp" / "maskcam-model")}


def test_inference_function_classifies_a_frame_under_the_runtime_with_only_its_asset_and_layer(
        inference, runtime, aws, model_export, tmp_path):
    staged = stage_frame(inference, aws, model_export)
    env, manifest, backend = staged.env, staged.manifest, staged.backend

    report = invoke(inference, runtime, aws, tmp_path, staged.event,
                    extra_env=model_dir_env(inference, tmp_path))

    result = report["result"]
    assert (result["status"], result["objects"], result["published"], result["rejected"], result["failed"]) == \
        ("ok", 1, 1, 0, 0), result
    outcome, = result["results"]
    topic = env["MASKCAM_CLOUD_TOPIC"].replace("+", DEVICE)
    assert outcome["topic"] == topic and outcome["faces"] == 2
    published = [(t, json.loads(p)) for t, p in backend.published_payloads]
    assert [t for t, _ in published] == [topic]
    event = published[0][1]
    assert schema.problems(event) == []
    assert (event["event_type"], event["device_id"], event["faces"], event["ts"]) == ("inference", DEVICE, 2, EVENT_MS)
    assert (event["model_name"], event["model_version"]) == (manifest["name"], manifest["version"])

    logs = [json.loads(line) for line in report["stdout"].splitlines() if line.startswith("{")]
    line, = [entry for entry in logs if entry.get("message") == "frames classified"]
    assert (line["service"], line["level"], line["published"], line["objects"]) == ("cloud-classifier", "INFO", 1, 1)
    assert "results" not in line and "request_id" in line

    code, layer = inference.directory.resolve(), (inference.layers[0].directory / "python").resolve()
    assert origin(report, "greengrassHelloWorld").is_relative_to(code)
    assert origin(report, "maskcam.cloud").is_relative_to(code)
    for module in ("numpy", "cv2", "onnxruntime", "onnxruntime.capi.onnxruntime_pybind11_state",
                   "aws_lambda_powertools"):
        assert origin(report, module).is_relative_to(layer), f"{module}: {report['modules'][module]}"
    for module in ("boto3", "botocore"):
        assert origin(report, module).is_relative_to(runtime.packages.resolve())


def test_without_its_layer_the_inference_function_cannot_import_numpy(
        inference, runtime, aws, model_export, tmp_path):
    """Nothing but the layer provides the native dependencies: the same run without it fails on the import."""
    staged = stage_frame(inference, aws, model_export)
    report = invoke(inference, runtime, aws, tmp_path, staged.event, layers=[],
                    extra_env=model_dir_env(inference, tmp_path), expect_error=True)
    assert "ModuleNotFoundError: No module named 'numpy'" in report["error"], report["error"]
    assert staged.backend.published_payloads == []


def test_a_missing_runtime_interpreter_fails_naming_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(pytest.fail.Exception) as failed:
        runtime_interpreter("python3.13")
    message = str(failed.value)
    assert "no CPython 3.13 interpreter was found" in message and "`pyenv install 3.13`" in message


def test_wifi_function_ingests_a_cp949_csv_under_the_runtime_with_only_its_asset(
        wifi, runtime, aws, tmp_path):
    import pyarrow.parquet as pq

    s3 = aws.client("s3")
    s3.create_bucket(Bucket=DATA_BUCKET)
    s3.put_bucket_versioning(Bucket=DATA_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    records = sample.records(40, seed=11)
    records[3]["latitude"] = "북위37"
    body = sample.file_bytes(records)
    body.decode("cp949")
    put = s3.put_object(Bucket=DATA_BUCKET, Key=WIFI_KEY, Body=body)

    report = invoke(wifi, runtime, aws, tmp_path,
                    eventbridge_event(DATA_BUCKET, WIFI_KEY, put["VersionId"], put["ETag"].strip('"')))

    table_prefix = wifi.properties["Environment"]["Variables"]["TABLE_PREFIX"]
    quarantine = f"quarantine/{WIFI_KEY[len('raw/'):]}/{put['VersionId']}/"
    (result,) = report["result"]["results"]
    assert result == {"key": WIFI_KEY, "status": "ok", "rows_in": 40, "rows_ok": 39, "rows_rejected": 1,
                      "encoding": "cp949", "report": quarantine + "report.json"}
    data_key = f"{table_prefix}2020__전국무료와이파이표준데이터.parquet"
    listing = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=DATA_BUCKET)["Contents"])
    assert listing == sorted([WIFI_KEY, data_key, quarantine + "rejects.csv", quarantine + "report.json"])
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=DATA_BUCKET, Key=data_key)["Body"].read()))
    assert table.num_rows == 39
    assert table.column("name").to_pylist() == [r["name"] for i, r in enumerate(records) if i != 3]
    saved = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=quarantine + "report.json")["Body"].read())
    assert (saved["status"], saved["rows_in"], saved["rows_ok"], saved["rows_rejected"]) == ("ok", 40, 39, 1)
    logs = [json.loads(line) for line in report["stdout"].splitlines() if line.startswith("{")]
    assert any(entry.get("message") == "ingested" and entry.get("service") == "wifi-ingest" for entry in logs)

    code = wifi.directory.resolve()
    for module in ("functions.wifi_ingest.handler", "pyarrow", "pyarrow.lib", "aws_lambda_powertools"):
        assert origin(report, module).is_relative_to(code), f"{module}: {report['modules'][module]}"
    for module in ("boto3", "botocore"):
        assert origin(report, module).is_relative_to(runtime.packages.resolve())
