"""Prints each synthesized stack with its resource counts by type: `python scripts/synth_summary.py cdk.out`."""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def stack_templates(assembly: Path) -> dict:
    """Stack name -> template dict, from a cloud assembly's manifest."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    out = {}
    for name, artifact in sorted(manifest.get("artifacts", {}).items()):
        if artifact.get("type") == "aws:cloudformation:stack":
            template_file = artifact["properties"]["templateFile"]
            out[name] = json.loads((assembly / template_file).read_text())
    return out


def summarize(assembly: Path) -> str:
    lines = []
    for name, template in stack_templates(assembly).items():
        types = Counter(r["Type"] for r in template.get("Resources", {}).values() if r["Type"] != "AWS::CDK::Metadata")
        lines.append(f"{name}: {sum(types.values())} resources")
        lines.extend(f"  {count:3d}  {rtype}" for rtype, count in sorted(types.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "cdk.out")
    if not (target / "manifest.json").exists():
        sys.exit(f"error: {target} is not a cloud assembly (no manifest.json); run `make synth` first")
    print(summarize(target))
