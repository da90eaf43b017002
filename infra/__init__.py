"""CDK infrastructure: settings, constructs (capabilities) and stacks (deployable units)."""
