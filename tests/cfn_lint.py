"""cfn-lint over synthesized templates, returning only errors (E-rules); warnings are informational."""
from __future__ import annotations

import json

from cfnlint.api import ManualArgs, lint

REGIONS = ["us-east-1"]


def lint_errors(template: dict, regions=REGIONS) -> list:
    matches = lint(json.dumps(template), config=ManualArgs(regions=regions))
    return [f"{m.rule.id} {'/'.join(map(str, m.path))}: {m.message}" for m in matches if m.rule.id.startswith("E")]
