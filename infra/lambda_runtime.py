"""The Python runtime every Lambda of the project uses: one setting (``lambda_runtime``), one place."""
from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct

from infra.acknowledge import acknowledge, skip_checkov
from infra.settings import CREATABLE_PYTHON_RUNTIMES, DEFAULT_PYTHON_RUNTIME, Settings


def project_runtime(settings: Settings) -> lambda_.Runtime:
    return lambda_.Runtime(settings.lambda_runtime, lambda_.RuntimeFamily.PYTHON)


def acknowledge_runtime_choice(function: IConstruct, settings: Settings) -> None:
    """cdk-nag L1 flags every runtime but the newest."""
    if settings.lambda_runtime == CREATABLE_PYTHON_RUNTIMES[-1]:
        return
    if settings.lambda_runtime == DEFAULT_PYTHON_RUNTIME:
        reason = (f"{DEFAULT_PYTHON_RUNTIME} is the newest runtime whose interpreter the test suite can run the "
                  "bundled function and layer under (tests/test_lambda_bundles.py); python3.14 is selectable with "
                  "the lambda_runtime setting but untested here.")
    else:
        reason = (f"Runtime {settings.lambda_runtime} was chosen explicitly with the lambda_runtime setting (e.g. to "
                  "match a device fleet or a dependency's wheels).")
    acknowledge(function, "AwsSolutions-L1", reason)


def record_function_decisions(function: IConstruct, *, failures: str) -> None:
    """checkov's Lambda checks this project decides against, with why (docs/kms.md for the key). ``failures`` says
    where failed invocations of this function go, instead of a DeadLetterConfig."""
    skip_checkov(function, "CKV_AWS_116", failures)
    skip_checkov(function, "CKV_AWS_117", "The function only calls AWS service endpoints (S3, IoT, Athena, Glue) and "
                                          "takes no inbound traffic; a VPC would add NAT or one endpoint per service "
                                          "without narrowing what it can reach, which IAM already does.")
    skip_checkov(function, "CKV_AWS_115", "No reserved concurrency by default: accounts with a low concurrency quota "
                                          "cannot reserve any and the deploy would fail (make preflight checks the "
                                          "quota); cloud_reserved_concurrency sets one where wanted.")
    skip_checkov(function, "CKV_AWS_173", "The environment holds bucket names, key prefixes and topic filters, no "
                                          "secrets; Lambda encrypts it at rest with its service key (docs/kms.md).")


ASYNC_FAILURES = ("Failed asynchronous invocations go to the on-failure destination (AWS::Lambda::EventInvokeConfig "
                  "to the trigger's SQS dead-letter queue), which supersedes a DeadLetterConfig.")
CUSTOM_RESOURCE_FAILURES = ("Invoked synchronously by CloudFormation through the custom resource provider: a failure "
                            "fails the deploy and is reported there, a dead-letter queue would never receive it.")
