"""Publishing an export to the model bucket (moto S3), and the export contract checks. Main venv: no mxnet here; the
export itself is a real one made by the model venv (tests/model_export_fixture.py)."""
from __future__ import annotations

import hashlib
import json
import shutil
import sys

import boto3
import pytest
from moto import mock_aws

from model import contract
from model.__main__ import main as cli
from model.publish import PublishError, publish

BUCKET = "deeplens-maskcam-models-123456789012-us-east-1"
PREFIX = "models/mask-classifier/test-seed0/"


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def export_copy(model_export, tmp_path):
    return shutil.copytree(model_export, tmp_path / "export")


def _keys(s3):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_main_venv_runs_without_mxnet():
    assert "mxnet" not in sys.modules


def test_real_export_follows_the_contract(model_export):
    manifest = contract.check_export(model_export)
    assert manifest["classes"] == ["mask", "no_mask"]
    assert manifest["input"] == contract.INPUT_SPEC
    assert manifest["output"] == "probabilities"
    assert manifest["pretrained"] is False
    assert set(manifest["files"]) == {"symbol", "params", "onnx"}
    assert sorted(manifest["sha256"]) == sorted(manifest["files"].values())
    assert {"mxnet", "onnx"} <= set(manifest["frameworks"])
    symbol = json.loads((model_export / manifest["files"]["symbol"]).read_text())
    assert contract.optimizer_problems(symbol) == []
    assert contract.symbol_class_count(symbol) == 2


def test_publish_uploads_under_versioned_prefix_and_verifies(s3, model_export):
    messages = []
    result = publish(model_export, BUCKET, s3=s3, progress=messages.append)
    manifest = contract.load_manifest(model_export)
    names = sorted(list(manifest["files"].values()) + ["manifest.json"])
    assert result["prefix"] == PREFIX
    assert result["manifest_uri"] == f"s3://{BUCKET}/{PREFIX}manifest.json"
    assert _keys(s3) == [PREFIX + n for n in names]
    for name in names:
        local = (model_export / name).read_bytes()
        # Real S3 also checks the ChecksumSHA256 sent with each upload; moto 5.2 neither stores nor checks it, so the
        # download-and-compare verification is what this test can see.
        obj = s3.get_object(Bucket=BUCKET, Key=PREFIX + name)
        assert obj["Body"].read() == local
        assert obj["Metadata"]["sha256"] == hashlib.sha256(local).hexdigest()
    assert result["keys"][-1].endswith("manifest.json"), "the manifest goes last: it marks a complete version"
    assert any("verified 4 object(s)" in m for m in messages)


def test_publish_refuses_to_overwrite_a_version(s3, model_export):
    publish(model_export, BUCKET, s3=s3, progress=lambda _: None)
    with pytest.raises(PublishError, match="already exists; versions are immutable"):
        publish(model_export, BUCKET, s3=s3, progress=lambda _: None)


def test_publish_refuses_missing_file(s3, export_copy):
    (export_copy / "mask-classifier.onnx").unlink()
    with pytest.raises(PublishError, match=r"refusing to publish: .*mask-classifier\.onnx \(onnx\) is missing"):
        publish(export_copy, BUCKET, s3=s3)
    assert _keys(s3) == []


def test_publish_refuses_missing_manifest(s3, export_copy):
    (export_copy / "manifest.json").unlink()
    with pytest.raises(PublishError, match="manifest.json: missing"):
        publish(export_copy, BUCKET, s3=s3)
    assert _keys(s3) == []


def test_publish_refuses_class_count_mismatch(s3, export_copy):
    path = export_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["classes"] = ["mask", "no_mask", "mask_below_nose"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(PublishError, match=r"class count mismatch: the model has 2 outputs, the manifest lists 3"):
        publish(export_copy, BUCKET, s3=s3)
    assert _keys(s3) == []


def test_publish_refuses_changed_file(s3, export_copy):
    with open(export_copy / "mask-classifier-0000.params", "ab") as f:
        f.write(b"\0")
    with pytest.raises(PublishError, match=r"mask-classifier-0000\.params: sha256 does not match the manifest"):
        publish(export_copy, BUCKET, s3=s3)
    assert _keys(s3) == []


def test_publish_refuses_a_bucket_deeplens_cannot_read(s3, model_export):
    with pytest.raises(PublishError, match="starts with 'deeplens-'"):
        publish(model_export, "maskcam-models", s3=s3)


def test_failed_verification_removes_the_partial_version(s3, model_export):
    class CorruptingReads:
        """S3 client whose downloads come back altered (what verification exists to catch)."""

        def __getattr__(self, name):
            return getattr(s3, name)

        def get_object(self, **kwargs):
            body = s3.get_object(**kwargs)["Body"].read() + b"corrupt"

            class Body:
                def read(self):
                    return body

            return {"Body": Body()}

    with pytest.raises(PublishError, match="verification failed: .*mask-classifier-symbol.json has sha256"):
        publish(model_export, BUCKET, s3=CorruptingReads(), progress=lambda _: None)
    assert _keys(s3) == []


def test_cli_publish(s3, model_export, export_copy, capsys):
    assert cli(["publish", str(model_export), "--bucket", BUCKET]) == 0
    assert f"published s3://{BUCKET}/{PREFIX}manifest.json" in capsys.readouterr().out
    (export_copy / "mask-classifier-symbol.json").unlink()
    assert cli(["publish", str(export_copy), "--bucket", BUCKET, "--prefix", "other"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to publish:") and "mask-classifier-symbol.json (symbol) is missing" in err


def _symbol(*nodes, heads=None):
    return {"nodes": list(nodes), "heads": heads or [[len(nodes) - 1, 0, 0]]}


def test_optimizer_problems_name_gluon_suffixes_and_missing_strides():
    gluon_style = _symbol(
        {"op": "null", "name": "data", "inputs": []},
        {"op": "Convolution", "name": "squeezenet0_conv0_fwd", "attrs": {"num_filter": "2"}, "inputs": [[0, 0, 0]]},
        {"op": "Pooling", "name": "pool0", "attrs": {"kernel": "(3, 3)", "pool_type": "max"}, "inputs": [[1, 0, 0]]},
    )
    problems = contract.optimizer_problems(gluon_style)
    assert any("'squeezenet0_conv0_fwd'" in p for p in problems)
    assert any("'pool0' has no explicit stride" in p for p in problems)
    gluon_style["nodes"][1]["name"] = "conv0"
    gluon_style["nodes"][2]["attrs"]["stride"] = "(2, 2)"
    assert contract.optimizer_problems(gluon_style) == []
