"""Acknowledging a cdk-nag finding whose id contains a cross-stack reference.

cdk-nag names a wildcard finding after the resolved resource, e.g.
``AwsSolutions-IAM5[Resource::{"Fn::GetStackOutput":{...}}/raw/*]``; that form exists only once CDK has resolved the
cross-stack references (after construction, before validation). ``acknowledge_resource_wildcards`` therefore
registers a construct validation that computes the finding ids at that point and acknowledges exactly those,
each with the given reason (through ``infra.acknowledge``).
"""
from __future__ import annotations

import json
from typing import Sequence

import jsii
from aws_cdk import Stack
from constructs import IConstruct, IValidation

from infra.acknowledge import acknowledge


def _flatten(value) -> str:
    """The text cdk-nag shows for a resolved ARN: Fn::Join flattened, other intrinsics as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Fn::Join"} and value["Fn::Join"][0] == "":
        return "".join(_flatten(part) for part in value["Fn::Join"][1])
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@jsii.implements(IValidation)
class _AcknowledgeResolved:
    def __init__(self, scope: IConstruct, rule: str, resources: Sequence[str], reason: str) -> None:
        self._scope, self._rule, self._resources, self._reason = scope, rule, list(resources), reason

    def validate(self) -> list:
        stack = Stack.of(self._scope)
        for resource in self._resources:
            acknowledge(self._scope, f"{self._rule}[Resource::{_flatten(stack.resolve(resource))}]", self._reason)
        return []


def acknowledge_resource_wildcards(scope: IConstruct, resources: Sequence[str], reason: str,
                                   rule: str = "AwsSolutions-IAM5") -> None:
    """Acknowledges ``rule`` for exactly these (possibly cross-stack) resource ARNs on ``scope`` and below."""
    scope.node.add_validation(_AcknowledgeResolved(scope, rule, resources, reason))
