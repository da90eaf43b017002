"""Each gate (cdk-nag AwsSolutions, CDK's CloudFormation validation, cfn-lint) passes on the app and bites on
a deliberately broken stack."""
import json
import os
import subprocess
import sys

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

from infra.acknowledge import acknowledge
from infra.app_stacks import add_gates
from tests.cfn_lint import lint_errors
from tests.conftest import ROOT, make_app


def synth_with_gates(tmp_path, build):
    app = make_app(tmp_path)
    stack = cdk.Stack(app, "GateProbe", env=cdk.Environment(region="us-east-1"))
    build(stack)
    add_gates(app)
    return app.synth()


def test_app_synthesizes_with_no_unacknowledged_findings(project):
    report = json.loads(open(os.path.join(project.assembly.directory, "validation-report.json")).read())
    failures = [v for plugin in report.get("pluginReports", []) for v in plugin.get("violations", [])]
    assert failures == []


def test_all_stacks_are_linted(templates, project):
    assert set(templates) == {s.stack_name for s in project.stacks.all()}
    for name, template in templates.items():
        assert lint_errors(template) == [], name


def test_nag_rejects_a_public_bucket(tmp_path):
    def public_bucket(stack):
        s3.Bucket(stack, "Public", block_public_access=s3.BlockPublicAccess(
            block_public_acls=False, block_public_policy=False, ignore_public_acls=False,
            restrict_public_buckets=False), public_read_access=True)

    with pytest.raises(RuntimeError, match="ValidationFailed") as err:
        synth_with_gates(tmp_path, public_bucket)
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-S2" in report or "AwsSolutions-S2" in str(err.value)


def test_nag_rejects_a_wildcard_iam_resource(tmp_path):
    def star_policy(stack):
        role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["*"]))

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        synth_with_gates(tmp_path, star_policy)
    assert "AwsSolutions-IAM5" in (tmp_path / "validation-report.json").read_text()


def test_an_acknowledgment_with_a_reason_clears_exactly_that_finding(tmp_path):
    def star_policy(stack):
        role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        role.add_to_policy(iam.PolicyStatement(actions=["xray:PutTraceSegments"], resources=["*"]))
        acknowledge(role, "AwsSolutions-IAM5[Resource::*]",
                    "X-Ray PutTraceSegments has no resource-level permissions; '*' is the only valid resource.")

    synth_with_gates(tmp_path, star_policy)  # does not raise


def test_an_acknowledgment_needs_a_specific_reason(tmp_path):
    app = make_app(tmp_path)
    stack = cdk.Stack(app, "S")
    with pytest.raises(ValueError, match="specific reason"):
        acknowledge(stack, "AwsSolutions-S1", "not needed")


def test_cfn_lint_rejects_a_malformed_property(templates):
    broken = json.loads(json.dumps(templates["maskcam-storage"]))
    workgroup = next(r for r in broken["Resources"].values() if r["Type"] == "AWS::Athena::WorkGroup")
    workgroup["Properties"]["WorkGroupConfiguration"]["BytesScannedCutoffPerQuery"] = "lots"
    bucket = next(r for r in broken["Resources"].values() if r["Type"] == "AWS::S3::Bucket")
    bucket["Properties"]["NoSuchProperty"] = True
    errors = lint_errors(broken)
    assert any("BytesScannedCutoffPerQuery" in e for e in errors), errors
    assert any("NoSuchProperty" in e for e in errors), errors


def test_cdk_validation_rules_are_errors_not_warnings():
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    assert context["@aws-cdk/core:validateAgainstDefaultRules"] is True


def test_a_bad_setting_stops_synth_with_a_message_naming_the_key(tmp_path):
    env = {**os.environ, "CDK_OUTDIR": str(tmp_path),
           "CDK_CONTEXT_JSON": json.dumps({"lambda_runtime": "python3.7"})}
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "Invalid setting 'lambda_runtime'" in result.stderr
    assert "creation blocked" in result.stderr
