"""The one SNS topic every alarm and business alert goes to, with the operators' e-mail subscriptions."""
from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

# CloudWatch alarms can publish to an encrypted topic only when the key policy lets cloudwatch.amazonaws.com use the
# key, which the AWS managed aws/sns key's policy cannot be changed to do
# (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services).
ALARM_PUBLISHER = "cloudwatch.amazonaws.com"


class OperatorTopic(Construct):
    """``.topic`` (KMS-encrypted with ``.key``, a customer key with rotation; TLS-only topic policy), one e-mail
    subscription per address in ``emails`` (each must be confirmed from the mail SNS sends), ``.action``: the alarm
    action publishing to it."""

    def __init__(self, scope: Construct, id: str, *, display_name: str, emails: Sequence[str]) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(self, "Key", enable_key_rotation=True, pending_window=Duration.days(7),
                           removal_policy=RemovalPolicy.DESTROY,
                           description=f"{display_name}: encrypts the operator notifications topic")
        self.key.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish", principals=[iam.ServicePrincipal(ALARM_PUBLISHER)],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"]))
        self.topic = sns.Topic(self, "Topic", display_name=display_name, master_key=self.key, enforce_ssl=True)
        # A topic policy replaces SNS's default one (which admits the owner account): CloudWatch gets its own
        # statement, limited to alarms of this account and region (confused-deputy protection).
        alarms = Stack.of(self).format_arn(service="cloudwatch", resource="alarm", resource_name="*",
                                           arn_format=ArnFormat.COLON_RESOURCE_NAME)
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish", principals=[iam.ServicePrincipal(ALARM_PUBLISHER)],
            actions=["sns:Publish"], resources=[self.topic.topic_arn],
            conditions={"ArnLike": {"aws:SourceArn": alarms}}))
        for address in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(address))
        self.action = cw_actions.SnsAction(self.topic)
