"""One place to record why a validation finding (cdk-nag or CDK's CloudFormation rules) does not apply."""
from __future__ import annotations

import json
from collections.abc import Sequence

import jsii
from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct, IValidation

_MIN_REASON = 40


def _check_reason(scope: IConstruct, rule_id: str, reason: str) -> None:
    if len(reason.strip()) < _MIN_REASON:
        raise ValueError(f"acknowledgment of {rule_id} at {scope.node.path} needs a specific reason "
                         f"(at least {_MIN_REASON} characters), got {reason!r}")


def acknowledge(scope: IConstruct, rule_id: str, reason: str, *, checkov: Sequence[str] = ()) -> None:
    """Acknowledges ``rule_id`` (e.g. ``AwsSolutions-IAM5[Resource::*]``) on ``scope`` and its children, and the
    ``checkov`` checks that are the same decision (same reason) on ``scope``'s CloudFormation resource.

    The reason must say why this resource is fine, not just that it is; short boilerplate is refused."""
    _check_reason(scope, rule_id, reason)
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))
    for check in checkov:
        skip_checkov(scope, check, reason)


def skip_checkov(scope: IConstruct, check_id: str, reason: str) -> None:
    """Records in the metadata of ``scope``'s CloudFormation resource (``checkov: skip``, which checkov reads from
    the template) that ``check_id`` (e.g. ``CKV_AWS_117``) does not apply, and why; visible in ``cdk diff``."""
    _check_reason(scope, check_id, reason)
    resource = scope if isinstance(scope, CfnResource) else scope.node.default_child
    if not isinstance(resource, CfnResource):
        raise ValueError(f"{scope.node.path} has no CloudFormation resource to record {check_id} on")
    metadata = resource.get_metadata("checkov") or {"skip": []}
    if not any(skip["id"] == check_id for skip in metadata["skip"]):
        metadata["skip"].append({"id": check_id, "comment": reason})
    resource.add_metadata("checkov", metadata)


def acknowledge_resource_wildcards(scope: IConstruct, resources: Sequence[str], reason: str,
                                   rule: str = "AwsSolutions-IAM5") -> None:
    """Acknowledges ``rule`` for exactly these resource ARNs (e.g. ``f"{bucket.bucket_arn}/raw/*"``) on ``scope``.

    cdk-nag names a wildcard finding after the resolved resource, e.g.
    ``AwsSolutions-IAM5[Resource::{"Fn::GetStackOutput":{...}}/raw/*]``. A cross-stack reference only takes that form
    once CDK has resolved references (after construction, before the validation plugins run), so a construct
    validation computes the ids at that point and acknowledges exactly those, each with ``reason``."""
    _check_reason(scope, rule, reason)
    scope.node.add_validation(_AcknowledgeResolved(scope, rule, resources, reason))


def _flatten(value) -> str:
    """The text cdk-nag shows for a resolved reference in a finding id, as its ``flattenCfnReference`` renders it
    (cdk-nag 3, lib/utils/flatten-cfn-reference.js): strings with ``${x}`` as ``<x>``, ``Fn::Join`` joined,
    ``Fn::Sub`` and ``Fn::ImportValue`` unwrapped, ``Ref`` as ``<name>``, ``Fn::GetAtt`` as ``<resource.attribute>``,
    anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Fn::Join":
            return arg[0].join(_flatten(part) for part in arg[1])
        if key in ("Fn::Sub", "Fn::ImportValue"):
            return _flatten(arg)
        if key == "Fn::GetAtt":
            return f"<{_flatten(arg[0])}.{_flatten(arg[1])}>"
        if key == "Ref":
            return f"<{_flatten(arg)}>"
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
