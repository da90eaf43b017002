"""DeepLens / Greengrass V1 entry point (the module and handler names the DeepLens project contract requires).

As in the DeepLens samples, the long-lived inference loop starts when the pinned Lambda is loaded on the device;
``function_handler`` is only invoked for messages and reports the loop's state. In the cloud (no
AWS_IOT_THING_NAME) nothing starts at import, and the handler classifies frames uploaded to S3 when invoked with an
S3 notification or an EventBridge "Object Created" event (``maskcam.cloud``). Configuration: ``maskcam.deeplens.ENV``
on a device, ``maskcam.cloud.ENV`` in the cloud."""
import logging
import os
import threading
from typing import Any, Dict

from maskcam.app import build_runner, summary
from maskcam.cloud import is_frames_event
from maskcam.deeplens import autostart, options_from_env

LOG = logging.getLogger("maskcam")
_lock = threading.Lock()
_state: Dict[str, Any] = {"runner": None, "thread": None, "error": None}


def start(environ=None):
    """Starts the inference loop on a background thread once; returns the runner (None if it could not start)."""
    with _lock:
        thread = _state["thread"]
        if thread is not None and thread.is_alive():
            return _state["runner"]
        try:
            runner = build_runner(options_from_env(os.environ if environ is None else environ))
        except Exception as err:  # bad configuration: report it from the handler, don't crash the import
            _state["error"] = "%s: %s" % (type(err).__name__, err)
            LOG.error("maskcam could not start: %s", _state["error"])
            return None
        thread = threading.Thread(target=runner.run, name="maskcam-inference")
        thread.daemon = True
        thread.start()
        _state.update(runner=runner, thread=thread, error=None)
        return runner


def function_handler(event, context):
    if is_frames_event(event):
        from maskcam.cloud import handler
        return handler(event, context)
    if _state["runner"] is None and not autostart(os.environ):
        return {"status": "idle", "reason": "not on a Greengrass core (AWS_IOT_THING_NAME unset); "
                                            "the loop runs on DeepLens / Greengrass devices only"}
    runner = start()
    if runner is None:
        return {"status": "error", "error": _state["error"]}
    return {"status": "running" if _state["thread"].is_alive() else "stopped", "summary": summary(runner)}


if autostart(os.environ):
    start()
