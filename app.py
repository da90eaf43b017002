#!/usr/bin/env python3
"""CDK entry point: ``cdk synth`` / ``cdk diff`` / ``cdk deploy`` run this (see README)."""
import sys

import aws_cdk as cdk

from infra.app_stacks import add_gates, build_stacks
from infra.settings import Settings, SettingsError
from infra.stacks.dashboard_stack import skip_message
from infra.stacks.device_stack import component_skip_message


def main() -> None:
    app = cdk.App()
    try:
        settings = Settings.from_context(app.node.try_get_context)
    except SettingsError as err:
        sys.exit(f"error: {err}")
    build_stacks(app, settings)
    for note in (skip_message(settings), component_skip_message(settings)):
        if note:
            print(note, file=sys.stderr)
    add_gates(app)
    app.synth()


if __name__ == "__main__":
    main()
