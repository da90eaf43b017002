"""cfn-lint over synthesized templates, returning only errors (E-rules); warnings are informational."""
from __future__ import annotations

import functools
import json

from cfnlint.api import ManualArgs
from cfnlint.config import ConfigMixIn
from cfnlint.decode.decode import decode_str
from cfnlint.runner import Runner

REGIONS = ["us-east-1"]


@functools.cache
def _runner(regions: tuple) -> Runner:
    """One runner (its rules loaded once, about 0.4 s) per region list, reused for every template as the cfn-lint CLI
    does for the files of one run; ``cfnlint.api.lint`` would build a new one per call."""
    return Runner(ConfigMixIn(**ManualArgs(regions=list(regions))))


def lint_errors(template: dict, regions=REGIONS) -> list:
    decoded, matches = decode_str(json.dumps(template))   # what cfnlint.api.lint does, with the runner kept
    if not matches and decoded is not None:
        matches = list(_runner(tuple(regions)).validate_template(decoded))
    return [f"{m.rule.id} {'/'.join(map(str, m.path))}: {m.message}" for m in matches if m.rule.id.startswith("E")]
