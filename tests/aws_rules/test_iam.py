"""Least privilege on the data: the project never deletes an S3 object, and every object-level grant names a key
prefix, never a whole bucket (`<bucket>/*`).

IAM evaluates a policy's Resource as given (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html);
an object ARN ending in `/*` right after the bucket covers every prefix, `raw/` (people's uploads) included.
"""
from __future__ import annotations

import copy
import re

from tests.aws_rules.support import all_resources, as_list, render

DELETES = re.compile(r"^(s3:(Delete.*|\*)|\*)$")
# a literal bucket ARN, or a reference to one (a cross-stack bucket ARN renders as <token>), then /*
WHOLE_BUCKET = re.compile(r"^(arn:aws:s3:::[^/]+|<token>)/\*$")


def statements(templates: dict):
    for stack, lid, resource in all_resources(templates):
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                if statement.get("Effect") == "Allow":
                    yield f"{stack}/{lid}", statement


def data_problems(templates: dict) -> list:
    problems = []
    for where, statement in statements(templates):
        actions = as_list(statement["Action"])
        s3_actions = [a for a in actions if a.startswith("s3:") or a == "*"]
        if any(DELETES.match(a) for a in s3_actions):
            problems.append(f"{where}: allows {[a for a in s3_actions if DELETES.match(a)]}")
        for resource in as_list(statement.get("Resource", [])) if s3_actions else []:
            arn = render(resource)
            if WHOLE_BUCKET.match(arn):
                problems.append(f"{where}: {s3_actions} on a whole bucket ({arn}); name the prefix")
    return problems


def test_no_role_deletes_objects_or_reaches_a_whole_bucket(templates, full_project):
    assert data_problems(templates) == []
    assert data_problems(full_project.templates) == []


def test_a_bucket_wide_grant_and_a_delete_are_reported(templates):
    bad = copy.deepcopy(templates)
    fn_policy = next(r for _, _, r in all_resources(bad) if r["Type"] == "AWS::IAM::Policy")
    fn_policy["Properties"]["PolicyDocument"]["Statement"].append(
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:DeleteObject*"],
         "Resource": {"Fn::Join": ["", [{"Fn::GetStackOutput": {"OutputName": "x"}}, "/*"]]}})
    problems = data_problems(bad)
    assert any("DeleteObject" in p for p in problems) and any("whole bucket" in p for p in problems)
