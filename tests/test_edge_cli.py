"""``python -m maskcam`` as a user runs it (subprocess from functions/edge) on an image folder and a video file,
with a real SqueezeNet export from the model pipeline (tests/model_export_fixture.py)."""
import json
import subprocess
import sys

import cv2
import pytest

from maskcam import schema
from tests.edge_support import EDGE_DIR, stream_frame


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "maskcam", *args], cwd=EDGE_DIR, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def export(model_export):
    return str(model_export)


def test_cli_on_an_image_folder_writes_valid_events_and_an_annotated_frame(tmp_path, export):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / ("%02d.jpg" % i)), stream_frame())
    events_file, shown = tmp_path / "events.jsonl", tmp_path / "latest.jpg"
    result = run_cli("--source", str(folder), "--model", export, "--publisher", "jsonl:%s" % events_file,
                     "--display", "file:%s" % shown, "--spool", str(tmp_path / "spool"), "--rate", "50")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    for event in events:
        schema.validate(event)
    inference = [e for e in events if e["event_type"] == "inference"]
    assert len(inference) == 3 and all(e["faces"] == 2 for e in inference)
    assert events[-1]["event_type"] == "heartbeat" and events[-1]["frames"] == 3
    assert "frames=3 errors=0" in result.stderr and "dropped=0" in result.stderr
    assert cv2.imread(str(shown)).shape == (480, 640, 3)


def test_cli_on_a_video_file_stops_at_its_end(tmp_path, export):
    video = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for _ in range(4):
        writer.write(stream_frame())
    writer.release()
    result = run_cli("--source", video, "--model", export, "--publisher", "-", "--spool", str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    inference = [json.loads(line) for line in result.stdout.splitlines() if '"inference"' in line]
    assert len(inference) == 4


@pytest.mark.parametrize("args, message", [
    (["--source", "0", "--model", "/nonexistent/export"], "no manifest.json"),
    (["--source", "/nonexistent/video.mp4", "--model", "EXPORT"], "source /nonexistent/video.mp4 does not exist"),
    (["--source", "0", "--model", "EXPORT", "--publisher", "carrier-pigeon"], "publisher 'carrier-pigeon'"),
])
def test_cli_refuses_unusable_input_with_a_clear_error(tmp_path, export, args, message):
    args = [export if a == "EXPORT" else a for a in args] + ["--spool", str(tmp_path / "spool")]
    result = run_cli(*args)
    assert result.returncode == 2
    assert "error:" in result.stderr and message in result.stderr
