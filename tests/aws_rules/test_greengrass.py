"""Greengrass V2 rules that no local tool checks, on the synthesized device stack.

- Artifacts exist when the version is created: "AWS IoT Greengrass ... checks that it can access the artifacts" when
  you create a component version (https://docs.aws.amazon.com/greengrass/v2/developerguide/upload-components.html;
  the error is "Specified artifact resource cannot be accessed").
- Versions are immutable: a name + version pair is created once
  (https://docs.aws.amazon.com/greengrass/v2/developerguide/component-recipe-reference.html, ComponentVersion).
- The nucleus downloads S3 artifacts with the token exchange role, calling s3:GetBucketLocation and s3:GetObject
  (https://docs.aws.amazon.com/greengrass/v2/developerguide/device-service-role.html).
- An artifact with `Unarchive: ZIP` is unpacked into `{artifacts:decompressedPath}/<zip file name without
  extension>/` (component-recipe-reference.html, recipe variables); a lifecycle path into any other folder is empty
  on the device.
- PEP 668 (https://peps.python.org/pep-0668/): Debian 12, Ubuntu 23.04+, Raspberry Pi OS bookworm refuse
  `pip install` (also --user) into the system Python; install scripts need a virtual environment.
"""
from __future__ import annotations

import copy
import json
import fnmatch
import re

import aws_cdk as cdk

from infra.constructs.greengrass_device import (ComponentProps, EdgeClassifierComponent, GreengrassDeviceIdentity,
                                                component_version)
from tests.aws_rules.support import (as_list, asset_object_keys, recipes, render, resources,
                                     statements_of_role, token_exchange_roles)
from tests.conftest import write_placeholder_export

ASSET_URI = re.compile(r"^s3://(?P<bucket>cdk-[a-z0-9]+-assets-\$\{AWS::AccountId\}-[a-z0-9-]+)/(?P<key>[^/]+)$")
S3_URI = re.compile(r"^s3://(?P<bucket>[^/]+)/(?P<key>.+)$")
MAX_VERSION_NUMBER = 2**31 - 1
MAX_VERSION_LENGTH = 64   # API_ComponentCandidate: componentVersion length 1-64


def _artifacts(recipe: dict):
    for manifest in recipe.get("Manifests", []):
        yield from manifest.get("Artifacts", [])


# -- rules ------------------------------------------------------------------------------------------------------------
def missing_artifacts(template: dict, uploaded_keys: set) -> list:
    """Every artifact must be an object the deployment uploads before CloudFormation runs (a CDK file asset):
    anything else, e.g. a model someone still has to publish, fails CreateComponentVersion in an empty account."""
    problems = []
    for lid, recipe in recipes(template):
        for artifact in _artifacts(recipe):
            match = ASSET_URI.match(artifact["Uri"])
            if not match or match["key"] not in uploaded_keys:
                problems.append(f"{lid}: artifact {artifact['Uri']} is not uploaded by this deployment; Greengrass "
                                "refuses to create a version whose artifacts cannot be read")
    return problems


def _content(recipe: dict) -> dict:
    rest = copy.deepcopy(recipe)
    rest.pop("ComponentVersion", None)
    for artifact in _artifacts(rest):
        key = S3_URI.match(artifact["Uri"])["key"]
        artifact["Uri"] = "asset:" + key.rsplit(".", 1)[0]
    return rest


def version_problems(template: dict) -> list:
    """ComponentVersion must be plain major.minor.patch (numbers < 2**31, at most 64 characters) and follow the
    recipe's content, so that a changed recipe never reuses an existing (immutable) version."""
    problems = []
    for lid, recipe in recipes(template):
        version = recipe.get("ComponentVersion", "")
        numbers = version.split(".")
        if len(version) > MAX_VERSION_LENGTH or len(numbers) != 3 or not all(n.isdigit() for n in numbers) \
                or any(int(n) > MAX_VERSION_NUMBER for n in numbers):
            problems.append(f"{lid}: ComponentVersion {version!r} is not major.minor.patch with numbers < 2**31")
        elif version != component_version(_content(recipe), ".".join(numbers[:2])):
            problems.append(f"{lid}: ComponentVersion {version} is not derived from the recipe's content; the next "
                            "change of code or model would try to create the same (immutable) version again")
    return problems


def download_problems(template: dict) -> list:
    """The token exchange role (the role behind the IoT role alias) must allow s3:GetBucketLocation on each artifact's
    bucket and s3:GetObject on its key."""
    problems = []
    roles = token_exchange_roles(template)
    for lid, recipe in recipes(template):
        if not roles:
            problems.append(f"{lid}: the core devices' IoT policy allows no role alias, so they have no token "
                            "exchange role")
        for role in roles:
            statements = [s for s in statements_of_role(template, role) if s.get("Effect") == "Allow"]

            for artifact in _artifacts(recipe):
                uri = S3_URI.match(artifact["Uri"])
                bucket_arn = f"arn:aws:s3:::{uri['bucket']}"
                if not _allowed(statements, "s3:GetBucketLocation", bucket_arn):
                    problems.append(f"{lid}: role {role} lacks s3:GetBucketLocation on {bucket_arn}")
                if not _allowed(statements, "s3:GetObject", f"{bucket_arn}/{uri['key']}"):
                    problems.append(f"{lid}: role {role} lacks s3:GetObject on {artifact['Uri']}")
    return problems


def _allowed(statements: list, action: str, arn: str) -> bool:
    """Whether one of the Allow ``statements`` names ``action`` on a resource pattern that matches ``arn``."""
    return any(action in as_list(s["Action"]) and
               any(fnmatch.fnmatchcase(arn, render(r)) for r in as_list(s["Resource"]))
               for s in statements)


def unpacked_path_problems(template: dict) -> list:
    """Each ``{artifacts:decompressedPath}/<folder>`` a lifecycle script uses is the unpacked folder of one of the
    component's ZIP artifacts."""
    problems = []
    for lid, recipe in recipes(template):
        for manifest in recipe.get("Manifests", []):
            folders = {S3_URI.match(a["Uri"])["key"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
                       for a in manifest.get("Artifacts", []) if a.get("Unarchive") == "ZIP"}
            scripts = json.dumps(manifest.get("Lifecycle", {}))
            for folder in re.findall(r"\{artifacts:decompressedPath\}/([^/\s'\"]+)", scripts):
                if folder not in folders:
                    problems.append(f"{lid}: {{artifacts:decompressedPath}}/{folder} is no unpacked artifact "
                                    f"(ZIP artifacts unpack to {sorted(folders)})")
    return problems


_PIP = re.compile(r"(\S+)\s+(?:-m\s+)?pip3?\s+install\b([^;&|]*)")


def install_problems(template: dict) -> list:
    """Every pip install in a lifecycle script runs a virtual environment's interpreter under the component's work
    path, never the system Python and never --user."""
    problems = []
    for lid, recipe in recipes(template):
        for manifest in recipe.get("Manifests", []):
            for phase, step in manifest.get("Lifecycle", {}).items():
                script = step["Script"] if isinstance(step, dict) else step
                for interpreter, args in _PIP.findall(script):
                    if "--user" in args or not interpreter.startswith("{work:path}/"):
                        problems.append(f"{lid} {phase}: `{interpreter} pip install{args}` installs into the system "
                                        "Python, which PEP 668 distributions refuse; use a venv under {work:path}")
    return problems


# -- the synthesized device stack passes ------------------------------------------------------------------------------
def test_the_component_passes_every_greengrass_rule(full_project):
    device = full_project.templates["maskcam-device"]
    assert recipes(device), "the full app must have a component"
    keys = asset_object_keys(full_project.assembly.directory, "maskcam-device")
    assert missing_artifacts(device, keys) == []
    assert version_problems(device) == []
    assert download_problems(device) == []
    assert install_problems(device) == []
    assert unpacked_path_problems(device) == []


def test_without_a_model_export_there_is_no_component_to_fail(templates):
    assert recipes(templates["maskcam-device"]) == []


def _component_version(tmp_path, onnx: bytes, topic: str = "maskcam/+/infer") -> str:
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(app, "S")
    identity = GreengrassDeviceIdentity(stack, "Id", project="p", inference_topic=topic)
    export = write_placeholder_export(tmp_path / onnx.hex()[:16] / "export", onnx=onnx)
    component = EdgeClassifierComponent(stack, "C", identity=identity, props=ComponentProps(
        component_name="com.example.C", publisher="p", inference_topic=topic, model_export=str(export)))
    return component.version


def test_the_version_changes_with_the_model_and_configuration_and_only_with_them(tmp_path):
    first = _component_version(tmp_path, b"model one")
    assert _component_version(tmp_path, b"model one") == first
    assert _component_version(tmp_path, b"model two") != first
    assert _component_version(tmp_path, b"model one", topic="cams/+/infer") != first


# -- each rule bites on the defect it encodes -------------------------------------------------------------------------
def _with_recipe(template: dict, change) -> dict:
    bad = copy.deepcopy(template)
    (lid, resource), = resources(bad, "AWS::GreengrassV2::ComponentVersion")
    recipe = next(r for i, r in recipes(template) if i == lid)
    change(recipe)
    resource["Properties"]["InlineRecipe"] = json.dumps(recipe)
    return bad


def test_a_model_artifact_in_the_model_bucket_is_reported(full_project):
    device = full_project.templates["maskcam-device"]
    keys = asset_object_keys(full_project.assembly.directory, "maskcam-device")
    bad = _with_recipe(device, lambda r: r["Manifests"][0]["Artifacts"].append(
        {"Uri": "s3://deeplens-maskcam-models-123456789012-us-east-1/models/mask-classifier/1/manifest.json"}))
    assert any("is not uploaded by this deployment" in p for p in missing_artifacts(bad, keys))


def test_a_fixed_version_is_reported(full_project):
    bad = _with_recipe(full_project.templates["maskcam-device"], lambda r: r.update(ComponentVersion="1.0.0"))
    assert any("not derived from the recipe's content" in p for p in version_problems(bad))
    bad = _with_recipe(full_project.templates["maskcam-device"], lambda r: r.update(ComponentVersion="1.0"))
    assert version_problems(bad)


def test_a_role_without_get_bucket_location_is_reported(full_project):
    bad = copy.deepcopy(full_project.templates["maskcam-device"])
    for _, policy in resources(bad, "AWS::IAM::Policy"):
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        statements[:] = [s for s in statements if s["Action"] != "s3:GetBucketLocation"]
    problems = download_problems(bad)
    assert problems and all("s3:GetBucketLocation" in p for p in problems)


def test_pip_install_user_is_reported(full_project):
    def old_install(recipe):
        recipe["Manifests"][0]["Lifecycle"]["Install"]["Script"] = \
            "python3 -m pip install --user -r {artifacts:decompressedPath}/x/requirements.txt"
    bad = _with_recipe(full_project.templates["maskcam-device"], old_install)
    assert any("PEP 668" in p for p in install_problems(bad))


def test_a_path_into_a_folder_no_artifact_unpacks_to_is_reported(full_project):
    def plain_model(recipe):
        recipe["Manifests"][0]["Artifacts"][1].pop("Unarchive")
    bad = _with_recipe(full_project.templates["maskcam-device"], plain_model)
    assert any("is no unpacked artifact" in p for p in unpacked_path_problems(bad))
