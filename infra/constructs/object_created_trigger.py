"""Runs a function for every object created under one prefix of a bucket, with nothing lost on failure."""
from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.acknowledge import acknowledge, skip_checkov

MAX_EVENT_AGE = Duration.hours(6)


class ObjectCreatedTrigger(Construct):
    """An EventBridge rule on ``bucket``'s "Object Created" events under ``prefix`` -> ``function``.

    EventBridge, not an S3 bucket notification: the bucket lives in the storage stack, and a notification pointing
    at another stack's function would make the two stacks depend on each other. The bucket must send events to
    EventBridge (the storage stack's data bucket does). Invocations that still fail after Lambda's retries, and
    events EventBridge cannot deliver, go to ``dead_letters`` (encrypted, TLS-only) for a person to inspect.
    Exposes ``rule`` and ``dead_letters``."""

    def __init__(self, scope: Construct, id: str, *, bucket: s3.IBucket, prefix: str, function: lambda_.IFunction,
                 description: str) -> None:
        super().__init__(scope, id)
        self.dead_letters = sqs.Queue(
            self, "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        skip_checkov(self.dead_letters, "CKV_AWS_27",
                     "Encrypted at rest with SSE-SQS (SqsManagedSseEnabled), which this check does not recognise; "
                     "a KMS key would have to admit EventBridge, which cannot use the AWS managed aws/sqs key.")
        acknowledge(self.dead_letters, "AwsSolutions-SQS3",
                    f"This queue is itself the dead-letter queue of the {prefix} trigger (Lambda on-failure "
                    "destination and EventBridge target DLQ); a person inspects what lands here.")
        function.configure_async_invoke(retry_attempts=2, max_event_age=MAX_EVENT_AGE,
                                        on_failure=destinations.SqsDestination(self.dead_letters))
        self.rule = events.Rule(
            self, "Rule",
            description=description,
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [bucket.bucket_name]}, "object": {"key": [{"prefix": prefix}]}},
            ),
            targets=[targets.LambdaFunction(function, dead_letter_queue=self.dead_letters,
                                            retry_attempts=8, max_event_age=MAX_EVENT_AGE)],
        )
