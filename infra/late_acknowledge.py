"""Acknowledging a cdk-nag finding whose id contains a cross-stack reference.

cdk-nag names a wildcard-resource finding after the resolved resource, e.g.
``AwsSolutions-IAM5[Resource::{"Fn::GetStackOutput":{...}}/*]``. A reference to another stack only resolves to
that form during synthesis (after ``prepareApp``), so the id cannot be written when the construct is built. A node
validation runs after references are resolved and before the validation plugins, which is where the exact id is
computed and acknowledged. The acknowledgment still names one resource, with a specific reason.
"""
from __future__ import annotations

import json

import jsii

from aws_cdk import Stack
from constructs import IConstruct, IValidation

from infra.acknowledge import acknowledge


@jsii.implements(IValidation)
class _LateAcknowledgment:
    def __init__(self, scope: IConstruct, rule: str, value: str, suffix: str, reason: str) -> None:
        self.scope, self.rule, self.value, self.suffix, self.reason = scope, rule, value, suffix, reason

    def validate(self) -> list:
        resolved = Stack.of(self.scope).resolve(self.value)
        text = resolved if isinstance(resolved, str) else json.dumps(resolved, separators=(",", ":"))
        acknowledge(self.scope, f"{self.rule}[Resource::{text}{self.suffix}]", self.reason)
        return []


def acknowledge_resource(scope: IConstruct, rule: str, value: str, suffix: str, reason: str) -> None:
    """Acknowledges ``<rule>[Resource::<value resolved in scope's stack><suffix>]`` on ``scope``, e.g.
    ``acknowledge_resource(role, "AwsSolutions-IAM5", bucket.bucket_arn, "/*", "...")``."""
    scope.node.add_validation(_LateAcknowledgment(scope, rule, value, suffix, reason))
