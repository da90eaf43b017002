"""One place to record why a validation finding (cdk-nag or CDK's CloudFormation rules) does not apply."""
from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

_MIN_REASON = 40


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledges ``rule_id`` (e.g. ``AwsSolutions-IAM5[Resource::*]``) on ``scope`` and its children.

    The reason must say why this resource is fine, not just that it is; short boilerplate is refused."""
    if len(reason.strip()) < _MIN_REASON:
        raise ValueError(f"acknowledgment of {rule_id} at {scope.node.path} needs a specific reason "
                         f"(at least {_MIN_REASON} characters), got {reason!r}")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))
