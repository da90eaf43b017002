"""Options for the DeepLens / Greengrass V1 Lambda, read from its environment variables (set in the Lambda or the
DeepLens project). Defaults are the DeepLens ones: awscam frames, the face-detection SSD, the awscam-optimized
classifier, greengrasssdk publishing to ``$aws/things/<thing>/infer`` and the ``/tmp/results.mjpeg`` FIFO."""

ENV = {
    "source": ("MASKCAM_SOURCE", "deeplens"),
    "model": ("MASKCAM_MODEL", "deeplens:mask-classifier"),
    "backend": ("MASKCAM_BACKEND", "auto"),
    "model_threads": ("MASKCAM_MODEL_THREADS", None),
    "classes": ("MASKCAM_CLASSES", "mask,no_mask"),
    "detector": ("MASKCAM_DETECTOR", "deeplens"),
    "publisher": ("MASKCAM_PUBLISHER", "deeplens"),
    "topic": ("MASKCAM_TOPIC", None),
    "display": ("MASKCAM_DISPLAY", "fifo:/tmp/results.mjpeg"),
    "rate": ("MASKCAM_RATE", None),
    "spool": ("MASKCAM_SPOOL", "/tmp/maskcam-spool"),
    "spool_max": ("MASKCAM_SPOOL_MAX", "10000"),
    "heartbeat": ("MASKCAM_HEARTBEAT", "60"),
    "max_frames": ("MASKCAM_MAX_FRAMES", None),
    "min_confidence": ("MASKCAM_MIN_CONFIDENCE", None),
}


def options_from_env(environ):
    return dict((key, environ.get(name, default)) for key, (name, default) in ENV.items())


def autostart(environ):
    """Start the loop at import on a Greengrass core (it sets AWS_IOT_THING_NAME), not in the cloud Lambda."""
    flag = environ.get("MASKCAM_AUTOSTART")
    if flag is not None:
        return flag.strip().lower() in ("1", "true", "yes")
    return bool(environ.get("AWS_IOT_THING_NAME"))
