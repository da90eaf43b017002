"""Reading a synthesized cloud assembly (``cdk synth``'s output folder): each stack's template and a summary of its
resources. ``make synth`` prints the summary (scripts/synth_summary.py), ``make diff`` compares the templates of two
assemblies (scripts/offline_diff.py) and ``make demo`` shows the summary of the one it synthesized."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any


def stack_templates(assembly: Path) -> dict[str, dict[str, Any]]:
    """Stack name -> template dict, from a cloud assembly's manifest."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    out = {}
    for name, artifact in sorted(manifest.get("artifacts", {}).items()):
        if artifact.get("type") == "aws:cloudformation:stack":
            template_file = artifact["properties"]["templateFile"]
            out[name] = json.loads((assembly / template_file).read_text())
    return out


def summarize(assembly: Path) -> str:
    """Each stack with its resource count, then its resources counted by type (CDK's metadata resource left out)."""
    lines = []
    for name, template in stack_templates(assembly).items():
        types = Counter(r["Type"] for r in template.get("Resources", {}).values() if r["Type"] != "AWS::CDK::Metadata")
        lines.append(f"{name}: {sum(types.values())} resources")
        lines.extend(f"  {count:3d}  {rtype}" for rtype, count in sorted(types.items()))
    return "\n".join(lines)
