"""Publishers: ``publish(payload_json_str)``, raising on failure (the dispatcher then spools the event and retries),
or raising ``PublishRefused`` for a payload that will never be accepted (the dispatcher dead-letters it).

- ``GreengrassV1Publisher``: ``greengrasssdk.client("iot-data")`` on a DeepLens / Greengrass V1 core, topic
  ``$aws/things/<AWS_IOT_THING_NAME>/infer``;
- ``IpcPublisher``: Greengrass V2 IPC ``PublishToIoTCore`` (``awsiot.greengrasscoreipc``), topic from the component
  configuration (``maskcam/<thing>/infer`` by default); a call the nucleus does not answer within ``timeout``
  seconds fails (the event is spooled) instead of hanging the publisher thread; ``InvalidArgumentsError`` (a payload
  the nucleus will never take) is ``PublishRefused``;
- ``JsonLinesPublisher``: one JSON object per line to a local file (``-`` = stdout); a write that fails half-way
  (full disk) is cut back, so the file never holds a partial line."""
import os
import sys
import threading

from ..runner import PublishRefused

DEEPLENS_TOPIC = "$aws/things/{thing}/infer"
V2_TOPIC = "maskcam/{thing}/infer"
IPC_TIMEOUT_S = 10.0


def thing_name(default="local"):
    return os.environ.get("AWS_IOT_THING_NAME") or default


class GreengrassV1Publisher:
    def __init__(self, topic=None):
        import greengrasssdk
        self.client = greengrasssdk.client("iot-data")
        self.topic = topic or DEEPLENS_TOPIC.format(thing=thing_name())

    def publish(self, payload):
        self.client.publish(topic=self.topic, payload=payload)


class IpcPublisher:
    def __init__(self, topic=None, timeout=IPC_TIMEOUT_S):
        from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
        from awsiot.greengrasscoreipc.model import QOS, InvalidArgumentsError
        self.client = GreengrassCoreIPCClientV2()
        self.qos = QOS.AT_LEAST_ONCE
        self.topic = topic or V2_TOPIC.format(thing=thing_name())
        self.timeout = timeout
        self._refused = InvalidArgumentsError

    def publish(self, payload):
        future = self.client.publish_to_iot_core_async(topic_name=self.topic, qos=self.qos,
                                                       payload=payload.encode("utf-8"))
        try:
            future.result(self.timeout)  # concurrent.futures.TimeoutError when the nucleus does not answer
        except self._refused as err:
            raise PublishRefused(
                "the nucleus refuses this payload: %s" % (getattr(err, "message", None) or err)) from err


class JsonLinesPublisher:
    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()

    def publish(self, payload):
        line = payload + "\n"
        with self._lock:
            if self.path == "-":
                sys.stdout.write(line)
                sys.stdout.flush()
                return
            data = line.encode("utf-8")
            with open(self.path, "ab", buffering=0) as handle:  # unbuffered: a failed write leaves nothing queued
                start = handle.seek(0, os.SEEK_END)
                try:
                    done = 0
                    while done < len(data):
                        done += handle.write(data[done:])
                except Exception:
                    try:
                        handle.truncate(start)
                    except Exception:
                        pass
                    raise


def make_publisher(spec, topic=None):
    """``deeplens`` / ``greengrass-v1``, ``ipc`` / ``greengrass-v2``, ``jsonl:<path>`` or ``-`` (stdout)."""
    kind, _, arg = str(spec).partition(":")
    if kind in ("deeplens", "greengrass-v1"):
        return GreengrassV1Publisher(topic)
    if kind in ("ipc", "greengrass-v2"):
        return IpcPublisher(topic)
    if kind == "jsonl" and arg:
        return JsonLinesPublisher(arg)
    if spec == "-":
        return JsonLinesPublisher("-")
    raise ValueError("publisher %r is not deeplens, ipc, jsonl:<path> or -" % spec)
