"""`make diff` machinery: synthesizes a base commit in a git worktree and diffs per stack, offline."""
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A clone of this repository's HEAD with one more commit that changes a bucket lifecycle rule."""
    clone = tmp_path_factory.mktemp("repo") / "clone"
    git(ROOT, "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone))
    (clone / "node_modules").symlink_to(ROOT / "node_modules")
    stack = clone / "infra" / "stacks" / "storage_stack.py"
    source = stack.read_text()
    assert "expiration=Duration.days(30)" in source
    stack.write_text(source.replace("expiration=Duration.days(30)", "expiration=Duration.days(7)", 1))
    git(clone, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "shorter retention")
    return clone


def run_diff(repo, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return subprocess.run([sys.executable, "-m", "scripts.offline_diff", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_change_shows_per_stack_and_fails_with_fail(repo):
    result = run_diff(repo, "--base", "HEAD~1", "--fail")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "=== maskcam-storage ===" in output
    assert '"ExpirationInDays": 30' in output and '"ExpirationInDays": 7' in output
    assert "1 stack(s) differ" in output
    assert output.count("There were no differences") >= 4   # the other stacks, without a cdk diff run each
    assert len(git(repo, "worktree", "list").splitlines()) == 1  # the base worktree was removed


def test_no_change_exits_zero(repo):
    result = run_diff(repo, "--base", "HEAD", "--fail")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 stack(s) differ" in result.stdout
    assert "one synth serves both sides" in result.stdout


def test_unknown_base_is_a_clear_error(repo):
    result = run_diff(repo, "--base", "no-such-ref")
    assert result.returncode != 0
    assert "BASE='no-such-ref' is not a commit" in result.stderr
