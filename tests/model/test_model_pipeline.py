"""Train -> export -> reload with MXNet and ONNX Runtime -> evaluate, on a generated dataset (model venv)."""
from __future__ import annotations

import json

import mxnet as mx
import numpy as np
import onnx
import pytest

from model import contract, dataset, export, network, train
from model.__main__ import main as cli

pytestmark = pytest.mark.mxnet
PNG = b"\x89PNG\r\n\x1a\n"


def _images(data_dir, n_per_class=4):
    samples = dataset.list_images(data_dir, ["mask", "no_mask"])
    chosen = [s for s in samples if s.label == 0][:n_per_class] + [s for s in samples if s.label == 1][:n_per_class]
    return next(dataset.batches(chosen, len(chosen)))


def test_training_writes_checkpoint_metrics_and_curves(trained_run):
    run_dir, metrics = trained_run
    assert (run_dir / "best.params").stat().st_size > 1_000_000
    assert (run_dir / "training_curves.png").read_bytes().startswith(PNG)
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["train_images"] + metrics["val_images"] == 24 and metrics["val_images"] == 6
    best = max(metrics["history"], key=lambda h: (h["val_acc"], -h["val_loss"]))
    assert metrics["best_epoch"] == best["epoch"]
    config = json.loads((run_dir / "run.json").read_text())
    assert config["classes"] == ["mask", "no_mask"] and config["pretrained"] is False


def test_same_seed_same_model_other_seed_other_model(synthetic_data, tmp_path):
    def weights(seed, name):
        train.train(synthetic_data, tmp_path / name, ["mask", "no_mask"], epochs=1, batch_size=8,
                    val_fraction=0.25, seed=seed, pretrained=False, progress=False)
        return mx.nd.load(str(tmp_path / name / "best.params"))

    first, again, other = weights(7, "a"), weights(7, "b"), weights(8, "c")
    assert first.keys() == again.keys()
    for key in first:
        np.testing.assert_array_equal(first[key].asnumpy(), again[key].asnumpy(), err_msg=key)
    assert any(not np.array_equal(first[k].asnumpy(), other[k].asnumpy()) for k in first)


def test_export_follows_the_contract(exported, trained_run):
    out, manifest = exported
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["mask-classifier-symbol.json", "mask-classifier-0000.params", "mask-classifier.onnx", "manifest.json"])
    assert contract.check_export(out) == manifest == json.loads((out / "manifest.json").read_text())
    assert manifest["name"] == "mask-classifier" and manifest["version"] == "1"
    assert manifest["classes"] == ["mask", "no_mask"]
    assert manifest["input"] == {"name": "data", "width": 224, "height": 224, "layout": "NCHW", "color": "RGB",
                                 "scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert manifest["output"] == "probabilities"
    assert manifest["pretrained"] is False
    assert manifest["frameworks"]["mxnet"] == mx.__version__ and manifest["frameworks"]["onnx"] == onnx.__version__
    assert manifest["metrics"]["best_epoch"] == trained_run[1]["best_epoch"]
    for name, digest in manifest["sha256"].items():
        assert contract.sha256_file(out / name) == digest


def test_mxnet_and_onnx_runtime_give_the_same_probabilities(exported, synthetic_data):
    out, manifest = exported
    files = manifest["files"]
    net = export.load_mxnet(out / files["symbol"], out / files["params"])
    session = export.load_onnx(out / files["onnx"])
    faces, _ = _images(synthetic_data)
    noise = np.random.RandomState(1).normal(0, 1, (3, 3, 224, 224)).astype(np.float32)
    for x in (faces, noise, faces[:1]):  # dynamic batch size, batch of one as on the device
        p_mx = net(mx.nd.array(x)).asnumpy()
        p_ort = session.run(None, {"data": x})[0]
        assert p_ort.shape == p_mx.shape == (len(x), 2)
        np.testing.assert_allclose(p_ort, p_mx, rtol=0, atol=1e-4)
        np.testing.assert_allclose(p_mx.sum(axis=1), 1.0, atol=1e-5)
    # the comparison is not vacuous: the trained model's output depends on the image
    p_faces = net(mx.nd.array(faces)).asnumpy()
    assert p_faces[:, 0].max() - p_faces[:, 0].min() > 1e-2


def test_exported_symbol_is_deeplens_optimizer_friendly(exported, tmp_path):
    out, manifest = exported
    symbol = json.loads((out / manifest["files"]["symbol"]).read_text())
    assert contract.optimizer_problems(symbol) == []
    names = [n["name"] for n in symbol["nodes"]]
    assert not [n for n in names if "_fwd" in n]
    pools = [n for n in symbol["nodes"] if n["op"] == "Pooling"]
    assert len(pools) == 4 and all("stride" in p["attrs"] for p in pools)
    assert names[0] == "data" and names[-1] == "probabilities" and symbol["nodes"][-1]["op"] == "softmax"
    params = mx.nd.load(str(out / manifest["files"]["params"]))
    assert {k.split(":", 1)[1] for k in params} == {n["name"] for n in symbol["nodes"]
                                                     if n["op"] == "null" and n["name"] != "data"}
    # ...whereas Gluon's own export is what the optimizer rejects
    net = network.WithProbabilities(network.build(2, pretrained=False))
    net.hybridize()
    net(mx.nd.zeros((1, 3, 224, 224)))
    net.export(str(tmp_path / "raw"))
    raw = json.loads((tmp_path / "raw-symbol.json").read_text())
    assert any("_fwd" in p for p in contract.optimizer_problems(raw))


def test_onnx_file_is_clean_and_portable(exported):
    out, manifest = exported
    model = onnx.load(str(out / manifest["files"]["onnx"]))
    onnx.checker.check_model(model, full_check=True)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [export.ONNX_OPSET]
    assert [i.name for i in model.graph.input] == ["data"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert not dims[0].HasField("dim_value") and [d.dim_value for d in dims[1:]] == [3, 224, 224]
    assert [o.name for o in model.graph.output] == ["probabilities"]
    assert json.loads({p.key: p.value for p in model.metadata_props}["classes"]) == ["mask", "no_mask"]


def test_evaluate_reports_and_both_runtimes_agree(exported, synthetic_data, tmp_path, capsys):
    from model.evaluate import evaluate

    out, _ = exported
    by_mx = evaluate(out, synthetic_data, tmp_path / "mx", runtime="mxnet", progress=False)
    by_onnx = evaluate(out, synthetic_data, tmp_path / "onnx", runtime="onnx", progress=False)
    matrix = by_mx["confusion_matrix"]["rows_true_cols_predicted"]
    assert by_mx["images"] == 24 and sum(map(sum, matrix)) == 24 and [sum(r) for r in matrix] == [12, 12]
    assert by_mx["accuracy"] == pytest.approx((matrix[0][0] + matrix[1][1]) / 24)
    assert matrix == by_onnx["confusion_matrix"]["rows_true_cols_predicted"]
    for cls in ("mask", "no_mask"):
        assert by_mx["per_class"][cls]["support"] == 12
    assert (tmp_path / "mx" / "confusion_matrix.png").read_bytes().startswith(PNG)
    assert "confusion matrix" in (tmp_path / "mx" / "evaluation.txt").read_text()

    assert cli(["evaluate", str(out), str(synthetic_data), "--out", str(tmp_path / "cli")]) == 0
    assert "accuracy:" in capsys.readouterr().out


def test_precision_recall_and_confusion():
    from model.evaluate import confusion, report

    matrix = confusion([0, 0, 0, 1, 1], [0, 0, 1, 1, 1], 2)
    assert matrix == [[2, 1], [0, 2]]
    result = report(matrix, ["mask", "no_mask"])
    assert result["accuracy"] == pytest.approx(0.8)
    assert result["per_class"]["mask"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "support": 3}
    assert result["per_class"]["no_mask"]["precision"] == pytest.approx(2 / 3)
    assert report([[0, 0], [0, 1]], ["a", "b"])["per_class"]["a"]["precision"] is None


def test_cli_train_and_export(synthetic_data, tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "export"
    assert cli(["train", str(synthetic_data), "--out", str(run), "--epochs", "1", "--batch-size", "8",
                "--no-pretrained", "--seed", "3"]) == 0
    assert "from scratch" in capsys.readouterr().out
    assert cli(["export", str(run), "--out", str(out), "--version", "2026-11-27"]) == 0
    assert contract.check_export(out)["version"] == "2026-11-27"
    assert cli(["export", str(run), "--out", str(tmp_path / "x"), "--version", "Bad Version"]) == 2
    assert "version 'Bad Version'" in capsys.readouterr().err


def test_pretrained_weights_unavailable_is_a_clear_error(synthetic_data, tmp_path, monkeypatch, capsys):
    import requests
    from mxnet.gluon.model_zoo import model_store

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'apache-mxnet.s3-accelerate...'")

    monkeypatch.setattr(model_store, "get_model_file", offline)
    with pytest.raises(network.PretrainedUnavailable, match="--no-pretrained"):
        network.build(2, pretrained=True)
    assert cli(["train", str(synthetic_data), "--out", str(tmp_path / "run"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "could not load the ImageNet weights of SqueezeNet 1.1" in err and "--weights-dir" in err
    assert not (tmp_path / "run" / "best.params").exists()


def test_bad_dataset_is_named(tmp_path, synthetic_data, capsys):
    with pytest.raises(dataset.DatasetError, match=r"no folder for class\(es\) \['with_mask'\]"):
        dataset.list_images(synthetic_data, ["with_mask", "no_mask"])
    (tmp_path / "mask").mkdir()
    (tmp_path / "no_mask").mkdir()
    (tmp_path / "mask" / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(dataset.DatasetError, match="no_mask: no images"):
        dataset.list_images(tmp_path, ["mask", "no_mask"])
    (tmp_path / "no_mask" / "b.jpg").write_bytes(b"not a jpeg")
    samples = dataset.list_images(tmp_path, ["mask", "no_mask"])
    with pytest.raises(dataset.DatasetError, match=r"a\.jpg: cannot read image"):
        list(dataset.batches(samples, 2))
    assert cli(["train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), "--no-pretrained"]) == 2
    assert "dataset folder not found" in capsys.readouterr().err


def test_split_is_stratified_and_seeded(synthetic_data):
    samples = dataset.list_images(synthetic_data, ["mask", "no_mask"])
    train_a, val_a = dataset.split(samples, 0.25, seed=0)
    train_b, val_b = dataset.split(samples, 0.25, seed=0)
    assert (train_a, val_a) == (train_b, val_b)
    assert sorted(s.path for s in train_a + val_a) == sorted(s.path for s in samples)
    assert [sum(1 for s in val_a if s.label == c) for c in (0, 1)] == [3, 3]
    assert dataset.split(samples, 0.25, seed=1)[1] != val_a


def test_training_learns_the_synthetic_task(tmp_path):
    """The loop really learns: from scratch, drawn masked vs unmasked faces are told apart on unseen images.
    (Seeded; from scratch on 32 images learning is slow and the 8-image validation split is noisy, hence the
    modest thresholds. Since training makes a grey copy of a quarter of the images, and the drawn masks differ from
    the faces mostly by colour, 8 epochs ended at train loss 0.59: 12 epochs.)"""
    from model import synthetic
    from model.evaluate import evaluate

    data = synthetic.make_dataset(tmp_path / "train", per_class=20, seed=1, size=64)
    unseen = synthetic.make_dataset(tmp_path / "unseen", per_class=10, seed=2, size=64)
    metrics = train.train(data, tmp_path / "run", ["mask", "no_mask"], epochs=12, batch_size=8, seed=0,
                          pretrained=False, progress=False)
    assert metrics["history"][0]["train_loss"] > 0.65 and metrics["history"][-1]["train_loss"] < 0.5
    export.export(tmp_path / "run", tmp_path / "export", version="learned")
    assert evaluate(tmp_path / "export", unseen, tmp_path / "eval", progress=False)["accuracy"] >= 0.7


def test_pretrained_features_are_loaded_and_recorded(synthetic_data, tmp_path, monkeypatch):
    """The --pretrained path, offline: Gluon's weight lookup is pointed at a local ImageNet-shaped (1000-class)
    SqueezeNet 1.1 file, as --weights-dir would find the real one. Its feature weights must be the ones training
    starts from, the head must be new, and the export must say pretrained: true."""
    from mxnet.gluon.model_zoo import model_store, vision

    network.seed_everything(5)
    imagenet_like = vision.squeezenet1_1(classes=1000)
    imagenet_like.initialize(mx.init.Xavier())
    imagenet_like(mx.nd.zeros((1, 3, 224, 224)))
    weights = tmp_path / "squeezenet1.1-local.params"
    imagenet_like.save_parameters(str(weights))
    requested = []
    monkeypatch.setattr(model_store, "get_model_file", lambda name, root=None: requested.append((name, root))
                        or str(weights))

    net = network.build(2, pretrained=True, weights_dir=tmp_path)
    assert requested == [("squeezenet1.1", str(tmp_path))]
    got, want = net.features[0].weight.data().asnumpy(), imagenet_like.features[0].weight.data().asnumpy()
    np.testing.assert_array_equal(got, want)
    assert net.output[0].weight.shape[0] == 2

    train.train(synthetic_data, tmp_path / "run", ["mask", "no_mask"], epochs=1, batch_size=8, seed=0,
                pretrained=True, weights_dir=tmp_path, progress=False)
    manifest = export.export(tmp_path / "run", tmp_path / "export", version="pretrained")
    assert manifest["pretrained"] is True and manifest["metrics"]["best_epoch"] == 1
