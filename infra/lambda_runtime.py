"""The Python runtime every Lambda of the project uses: one setting (``lambda_runtime``), one place."""
from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct

from infra.acknowledge import acknowledge
from infra.settings import CREATABLE_PYTHON_RUNTIMES, Settings


def project_runtime(settings: Settings) -> lambda_.Runtime:
    return lambda_.Runtime(settings.lambda_runtime, lambda_.RuntimeFamily.PYTHON)


def acknowledge_runtime_choice(function: IConstruct, settings: Settings) -> None:
    """cdk-nag L1 flags every runtime but the newest; an older one can only come from an explicit setting."""
    if settings.lambda_runtime != CREATABLE_PYTHON_RUNTIMES[-1]:
        acknowledge(function, "AwsSolutions-L1",
                    f"Runtime {settings.lambda_runtime} was chosen explicitly with the lambda_runtime setting "
                    "(e.g. to match a device fleet or a dependency's wheels); the default is the newest runtime.")
