"""A second, independent security gate: checkov's CloudFormation policies over every synthesized template (the default
app and the one with every optional part, dashboard included), run from its own venv (.venv-checkov; it pins an old
boto3). No check may fail; a finding we keep is skipped in the resource's own metadata (``checkov: skip``, written by
``infra.acknowledge.skip_checkov`` / ``acknowledge(..., checkov=...)``) with a specific reason."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs

from infra.acknowledge import skip_checkov

pytestmark = pytest.mark.slow   # checkov over every template in a process of its own: about 6 s

ROOT = Path(__file__).resolve().parent.parent
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
MIN_REASON = 40


def run_checkov(directory: Path) -> dict:
    """checkov's JSON results over the templates under ``directory``: {"failed": [...], "skipped": [...],
    "passed": n}."""
    assert CHECKOV.exists(), f"{CHECKOV} not found: run `make setup` (it creates .venv-checkov)"
    command = [str(CHECKOV), "--framework", "cloudformation", "-o", "json", "--compact", "--skip-download",
               "-d", str(directory)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]   # 1: some check failed
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    out = {"failed": [], "skipped": [], "passed": 0}
    for report in reports:
        out["failed"] += report["results"]["failed_checks"]
        out["skipped"] += report["results"]["skipped_checks"]
        out["passed"] += report["summary"]["passed"]
    return out


def write_templates(templates: dict, directory: Path) -> Path:
    directory.mkdir(parents=True)
    for name, template in templates.items():
        (directory / f"{name}.template.json").write_text(json.dumps(template))
    return directory


@pytest.fixture(scope="module")
def results(templates, full_project, tmp_path_factory):
    base = tmp_path_factory.mktemp("checkov")
    write_templates(templates, base / "default")
    write_templates(full_project.templates, base / "full")
    return run_checkov(base)


def test_no_check_fails_on_any_template(results):
    failed = [f"{c['check_id']} {c['resource']} ({Path(c['file_path']).name}): {c['check_name']}"
              for c in results["failed"]]
    assert failed == []
    assert results["passed"] > 100


def test_every_skip_says_why(results):
    assert results["skipped"], "no skip recorded: the decisions in the templates are not read"
    vague = [(c["check_id"], c["resource"], c["check_result"].get("suppress_comment"))
             for c in results["skipped"] if len((c["check_result"].get("suppress_comment") or "").strip()) < MIN_REASON]
    assert vague == []


def test_the_gate_bites_on_a_public_bucket_and_an_unencrypted_queue(tmp_path):
    template = {"Resources": {
        "Open": {"Type": "AWS::S3::Bucket", "Properties": {"AccessControl": "PublicRead"}},
        "Plain": {"Type": "AWS::SQS::Queue", "Properties": {}}}}
    (tmp_path / "bad.template.json").write_text(json.dumps(template))
    failed = {c["check_id"] for c in run_checkov(tmp_path)["failed"]}
    assert {"CKV_AWS_20", "CKV_AWS_27"} <= failed


def test_a_vague_skip_is_refused():
    stack = cdk.Stack(cdk.App(), "S")
    queue = sqs.Queue(stack, "Q")
    with pytest.raises(ValueError, match="needs a specific reason"):
        skip_checkov(queue, "CKV_AWS_27", "not needed")
    skip_checkov(queue, "CKV_AWS_27", "A reason that says which property makes the finding not apply here.")
    assert queue.node.default_child.get_metadata("checkov")["skip"][0]["id"] == "CKV_AWS_27"
