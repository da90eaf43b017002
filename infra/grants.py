"""Least-privilege S3 grants on key prefixes of one bucket, each with the cdk-nag acknowledgment its prefix wildcard
needs (in the shape of aws-cdk-lib's grants: the statement and its justification in one call)."""
from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

from infra.acknowledge import acknowledge_resource_wildcards


def grant_objects(role: iam.IRole, bucket: s3.IBucket, *, actions: Sequence[str], prefixes: Sequence[str],
                  reason: str) -> None:
    """``actions`` on the objects under each of ``prefixes``; ``reason`` says why names under them are not known."""
    arns = [bucket.arn_for_objects(f"{prefix}*") for prefix in prefixes]
    role.add_to_principal_policy(iam.PolicyStatement(actions=list(actions), resources=arns))
    acknowledge_resource_wildcards(role, arns, reason)


def grant_listing(role: iam.IRole, bucket: s3.IBucket, *, prefixes: Sequence[str],
                  actions: Sequence[str] = ("s3:ListBucket",)) -> None:
    """Bucket-level ``actions`` (ListBucket by default), listing limited to ``prefixes``."""
    role.add_to_principal_policy(iam.PolicyStatement(
        actions=list(actions), resources=[bucket.bucket_arn],
        conditions={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}}))
