"""The project's CloudWatch log groups: named by CloudFormation, deleted with their stack, encrypted by CloudWatch
Logs' own keys (the decision, docs/kms.md)."""
from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.acknowledge import skip_checkov

KMS_DECISION = ("CloudWatch Logs encrypts every log group at rest with its own keys; these groups hold processing "
                "messages and counters, no frames or personal data, so a customer key (and its key policy for "
                "logs.<region>.amazonaws.com) is not worth its cost here (docs/kms.md).")


def project_log_group(scope: Construct, id: str, *,
              retention: logs.RetentionDays = logs.RetentionDays.THREE_MONTHS) -> logs.LogGroup:
    group = logs.LogGroup(scope, id, retention=retention, removal_policy=RemovalPolicy.DESTROY)
    skip_checkov(group, "CKV_AWS_158", KMS_DECISION)
    return group


def function_role(scope: Construct, *, description: str, role_id: str = "Role",
                  logs_id: str = "Logs") -> tuple[iam.Role, logs.LogGroup]:
    """A Lambda execution role of its own (no managed policy) and the log group it may write to, nothing else."""
    role = iam.Role(scope, role_id, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description)
    log_group = project_log_group(scope, logs_id)
    log_group.grant_write(role)
    return role, log_group
