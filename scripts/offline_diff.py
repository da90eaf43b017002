"""Offline review diff: synthesizes BASE (a git ref, via `git worktree`) and the working tree, then runs
`cdk diff --template` per stack. No AWS credentials are needed.

    python -m scripts.offline_diff --base HEAD~1 [--fail]      (from the repository root; or `make diff`)

With --fail the exit code is 1 when any stack differs (for PR checks).

Each side imports its own checkout's device package: the venv's ``maskcam`` is installed editable from this working
tree (requirements-dev.txt), so each synth gets its checkout's functions/edge first on PYTHONPATH; otherwise the base
would be synthesized with the working tree's ``maskcam``.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from infra.assembly import stack_templates

ROOT = Path(__file__).resolve().parent.parent

CDK = ROOT / "node_modules" / ".bin" / "cdk"
EMPTY_TEMPLATE = {"Resources": {}}


def synth(source: Path, out: Path) -> None:
    """Synthesizes the app in ``source`` with its own cdk.json context, like `cdk synth` but without bundling Lambda
    dependencies: asset hashes then come from the source folders, which is what a review diff needs (and it needs
    no package registry)."""
    context = json.loads((source / "cdk.json").read_text())["context"]
    context["aws:cdk:bundling-stacks"] = []
    env = {**os.environ, "CDK_OUTDIR": str(out), "CDK_CONTEXT_JSON": json.dumps(context)}
    env["PYTHONPATH"] = os.pathsep.join([str(source / "functions" / "edge")] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("CDK_DEFAULT_ACCOUNT", None)
    result = subprocess.run([sys.executable, "app.py"], cwd=source, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"error: synth of {source} failed:\n{result.stdout}{result.stderr}")


def diff_stack(head_out: Path, stack: str, base_template: Path, fail: bool) -> int:
    cmd = [str(CDK), "diff", "--exclusively", "--app", str(head_out), "--template", str(base_template), stack]
    if fail:
        cmd.append("--fail")
    return subprocess.run(cmd, cwd=ROOT, stderr=subprocess.STDOUT).returncode


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def working_tree_is(commit: str) -> bool:
    """Whether the working tree holds exactly ``commit``'s files (nothing modified, staged or untracked): then one
    synth serves both sides."""
    if _git("status", "--porcelain"):
        return False
    return _git("rev-parse", "HEAD^{tree}") == _git("rev-parse", f"{commit}^{{tree}}")


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD~1", help="git ref to compare against (default HEAD~1)")
    parser.add_argument("--fail", action="store_true", help="exit 1 if any stack differs")
    args = parser.parse_args(argv)

    rev = subprocess.run(["git", "rev-parse", "--verify", f"{args.base}^{{commit}}"], cwd=ROOT,
                         capture_output=True, text=True)
    if rev.returncode != 0:
        sys.exit(f"error: BASE={args.base!r} is not a commit in this repository")

    work = Path(tempfile.mkdtemp(prefix="cdk-diff-"))
    worktree = work / "base-src"
    try:
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(worktree), rev.stdout.strip()],
                       cwd=ROOT, check=True)
        print(f"diff: synthesizing base {args.base} ({rev.stdout.strip()[:10]}) and the working tree", flush=True)
        head_out = work / "base.out" if working_tree_is(rev.stdout.strip()) else work / "head.out"
        sides = [(worktree, work / "base.out")] + ([(ROOT, head_out)] if head_out.name == "head.out" else [])
        if len(sides) == 1:
            print(f"diff: the working tree is {args.base}: one synth serves both sides", flush=True)
        with concurrent.futures.ThreadPoolExecutor(len(sides)) as pool:   # two processes of their own: both at once
            for done in [pool.submit(synth, source, out) for source, out in sides]:
                done.result()   # re-raises a failed synth's SystemExit here
        base = stack_templates(work / "base.out")
        head = stack_templates(head_out)

        changed = 0
        for stack in sorted(set(base) | set(head)):
            print(f"\n=== {stack} ===", flush=True)
            if stack not in head:
                print(f"stack removed (was {len(base[stack].get('Resources', {}))} resources in {args.base})")
                changed += 1
                continue
            if base.get(stack) == head[stack]:
                print("There were no differences")   # what `cdk diff` says; its start-up costs seconds per stack
                continue
            base_template = work / f"{stack}.base.json"
            base_template.write_text(json.dumps(base.get(stack, EMPTY_TEMPLATE)))
            if stack not in base:
                print(f"new stack (not in {args.base})")
            changed += diff_stack(head_out, stack, base_template, args.fail) != 0
        print(f"\ndiff: {changed} stack(s) differ" if args.fail else "")
        return 1 if args.fail and changed else 0
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
