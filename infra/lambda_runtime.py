"""The Python runtime every Lambda of the project uses: one setting (``lambda_runtime``), one place."""
from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct

from infra.acknowledge import acknowledge
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
