"""The project's Athena workgroup: engine v3, enforced encrypted result location, per-query scan cutoff."""
from __future__ import annotations

from aws_cdk import aws_athena as athena
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.grants import grant_listing, grant_objects

ENGINE_VERSION = "Athena engine version 3"


class AthenaWorkGroup(Construct):
    """Workgroup whose settings clients cannot override: results go to ``results_bucket``/``results_prefix``
    (SSE-S3), every query stops after ``bytes_scanned_cutoff`` bytes, CloudWatch metrics are on."""

    def __init__(self, scope: Construct, id: str, *, name: str, results_bucket: s3.IBucket,
                 results_prefix: str, bytes_scanned_cutoff: int) -> None:
        super().__init__(scope, id)
        self.results_bucket = results_bucket
        self.results_prefix = results_prefix.strip("/") + "/"
        self.name = name
        self.resource = athena.CfnWorkGroup(
            self, "Resource",
            name=name,
            description="Mask-classifier analytics; settings enforced for every client (QuickSight included).",
            state="ENABLED",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=bytes_scanned_cutoff,
                requester_pays_enabled=False,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version=ENGINE_VERSION),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=results_bucket.s3_url_for_object(self.results_prefix),
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"),
                ),
            ),
        )

    @property
    def results_objects_arn(self) -> str:
        return self.results_bucket.arn_for_objects(f"{self.results_prefix}*")

    def grant_query_results(self, role: iam.IRole) -> None:
        """What a client running queries in this workgroup needs on its result location: read and write the result
        objects, list and locate the bucket (Athena names a result file per query execution)."""
        grant_objects(role, self.results_bucket, actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                      prefixes=[self.results_prefix],
                      reason="Object wildcard limited to the workgroup's result prefix: Athena names its result files "
                             "per query execution, so their keys are not known in advance.")
        grant_listing(role, self.results_bucket, prefixes=[self.results_prefix])
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:GetBucketLocation"],
                                                         resources=[self.results_bucket.bucket_arn]))
