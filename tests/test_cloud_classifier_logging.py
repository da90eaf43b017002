"""The cloud classifier's log line (maskcam.cloud.handler): one JSON line per invocation through Powertools' Logger,
an error line before a failed batch is retried, and the same line from a plain fallback where Powertools is missing
(a device, or a layer without it)."""
import json
import logging
import sys
from types import SimpleNamespace

import pytest

from maskcam import cloud

ENV = {"MASKCAM_CLOUD_MODEL_BUCKET": "deeplens-models", "MASKCAM_CLOUD_MODEL_PREFIX": "models/m/1/"}
RESULT = {"published": 1, "rejected": 1, "failed": 0, "skipped": 0, "status": "partial", "objects": 2,
          "results": [{"key": "frames/cam-1/a.jpg", "status": "published"}, {"key": "x", "status": "rejected"}]}


@pytest.fixture
def handler(monkeypatch):
    """cloud.handler with the pipeline, the adapters and the classifier replaced; ``outcome`` sets what it does."""
    outcome = {"result": dict(RESULT)}

    class Classifier:
        def __init__(self, *args):
            pass

        def handle(self, event, request_id):
            if "raise" in outcome:
                raise cloud.FramesFailed(outcome["raise"])
            return outcome["result"]
    monkeypatch.setattr(cloud, "load_pipeline", lambda config: object())
    monkeypatch.setattr(cloud, "CloudClassifier", Classifier)
    monkeypatch.setitem(cloud._ADAPTERS, "store", object())
    monkeypatch.setitem(cloud._ADAPTERS, "publisher", object())
    monkeypatch.setattr(cloud, "_LOGGER", [])
    # Powertools keeps its handler on the stdlib logger of the service name, bound to the sys.stdout of the test that
    # made it first (capsys replaces it per test): each test starts with a fresh one, as a Lambda process does
    monkeypatch.delitem(logging.Logger.manager.loggerDict, "cloud-classifier", raising=False)
    context = SimpleNamespace(aws_request_id="req-1")
    return lambda: cloud.handler({}, context, environ=ENV), outcome


def lines(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_a_batch_gives_one_powertools_line_with_its_counts_and_request_id(handler, capsys):
    run, _ = handler
    assert run()["objects"] == 2
    line, = lines(capsys)
    assert (line["service"], line["level"], line["message"]) == ("cloud-classifier", "INFO", "frames classified")
    assert (line["published"], line["rejected"], line["objects"], line["request_id"]) == (1, 1, 2, "req-1")
    assert "results" not in line and "timestamp" in line   # Powertools' own key: this is its Logger


def test_a_failed_batch_logs_an_error_line_and_still_raises_for_the_retry(handler, capsys):
    run, outcome = handler
    failed = dict(RESULT, failed=1, published=0, status="partial",
                  results=[{"key": "frames/cam-1/a.jpg", "status": "failed", "error": "SlowDown"}])
    outcome["raise"] = failed
    with pytest.raises(cloud.FramesFailed, match="SlowDown"):
        run()
    line, = lines(capsys)
    assert (line["level"], line["message"], line["failed"]) == ("ERROR", "frames failed, the event will be retried", 1)


@pytest.mark.parametrize("missing", [None, SyntaxError])
def test_without_powertools_the_same_line_is_printed(handler, capsys, monkeypatch, missing):
    if missing is None:
        monkeypatch.setitem(sys.modules, "aws_lambda_powertools", None)   # import fails: ImportError
    else:
        class Broken:   # Powertools 3 on a Python it does not support fails to import with a SyntaxError
            def __getattr__(self, name):
                raise SyntaxError("invalid syntax")
        monkeypatch.setitem(sys.modules, "aws_lambda_powertools", Broken())
    run, _ = handler
    run()
    line, = lines(capsys)
    assert isinstance(cloud._LOGGER[0], cloud._JsonLines)
    assert (line["service"], line["level"], line["message"], line["request_id"]) == \
        ("cloud-classifier", "INFO", "frames classified", "req-1")
