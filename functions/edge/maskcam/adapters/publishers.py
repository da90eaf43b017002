"""Publishers: ``publish(payload_json_str)``, raising on failure (the dispatcher then spools the event).

- ``GreengrassV1Publisher``: ``greengrasssdk.client("iot-data")`` on a DeepLens / Greengrass V1 core, topic
  ``$aws/things/<AWS_IOT_THING_NAME>/infer``;
- ``IpcPublisher``: Greengrass V2 IPC ``PublishToIoTCore`` (``awsiot.greengrasscoreipc``), topic from the component
  configuration (``maskcam/<thing>/infer`` by default);
- ``JsonLinesPublisher``: one JSON object per line to a local file (``-`` = stdout)."""
import os
import sys
import threading

DEEPLENS_TOPIC = "$aws/things/{thing}/infer"
V2_TOPIC = "maskcam/{thing}/infer"


def thing_name(default="local"):
    return os.environ.get("AWS_IOT_THING_NAME") or default


class GreengrassV1Publisher(object):
    def __init__(self, topic=None):
        import greengrasssdk
        self.client = greengrasssdk.client("iot-data")
        self.topic = topic or DEEPLENS_TOPIC.format(thing=thing_name())

    def publish(self, payload):
        self.client.publish(topic=self.topic, payload=payload)


class IpcPublisher(object):
    def __init__(self, topic=None):
        from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
        from awsiot.greengrasscoreipc.model import QOS
        self.client = GreengrassCoreIPCClientV2()
        self.qos = QOS.AT_LEAST_ONCE
        self.topic = topic or V2_TOPIC.format(thing=thing_name())

    def publish(self, payload):
        self.client.publish_to_iot_core(topic_name=self.topic, qos=self.qos, payload=payload.encode("utf-8"))


class JsonLinesPublisher(object):
    def __init__(self, path):
        self.path = path
        self._lock = threading.Lock()

    def publish(self, payload):
        with self._lock:
            if self.path == "-":
                sys.stdout.write(payload + "\n")
                sys.stdout.flush()
                return
            with open(self.path, "a") as handle:
                handle.write(payload + "\n")


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
