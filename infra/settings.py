"""Deployment settings, parsed once from CDK context into a typed, validated object.

Defaults live in ``cdk.json`` (``context``); ``cdk synth -c key=value`` overrides them. Values given with ``-c``
arrive as strings, values in ``cdk.json`` as JSON types; both are accepted. A bad value raises ``SettingsError``
naming the key, the value and what is allowed, so synth stops before any stack is built.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from collections.abc import Callable, Mapping

from functions.alerts.queries import MAX_SILENT_MINUTES
from functions.analytics.layout import FLUSH_SECONDS
from maskcam.manifest import ManifestError, load_manifest

# Lambda runtimes a stack can still create (platform-facts: python2.7/3.7 creation is blocked, 3.8/3.9 are
# deprecated with creation blocked from 2027-02-01). DeepLens devices themselves run 3.7; see README.
CREATABLE_PYTHON_RUNTIMES = ("python3.10", "python3.11", "python3.12", "python3.13", "python3.14")
# The newest runtime whose interpreter the test suite can run the bundled Lambda assets under (no 3.14 interpreter
# installs on the development and CI machines); python3.14 stays selectable.
DEFAULT_PYTHON_RUNTIME = "python3.13"
BLOCKED_PYTHON_RUNTIMES = {
    "python2.7": "creation blocked since 2021-07-15",
    "python3.6": "creation blocked since 2022",
    "python3.7": "creation blocked since 2024-01-09",
    "python3.8": "deprecated, creation blocked from 2027-02-01",
    "python3.9": "deprecated 2025-12-15, creation blocked from 2027-02-01",
}

_PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$")
_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_GLUE_NAME_RE = re.compile(r"^[a-z0-9_]{1,255}$")
_LAMBDA_NAME_RE = re.compile(r"^deeplens[A-Za-z0-9_-]{0,56}$")
_THING_GROUP_RE = re.compile(r"^[A-Za-z0-9:_-]{1,128}$")
_MODEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_MODEL_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_COMPONENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
QUICKSIGHT_IMPORT_MODES = ("SPICE", "DIRECT_QUERY")
_QS_PRINCIPAL_RE = re.compile(r"^arn:aws[a-z-]*:quicksight:[a-z0-9-]+:\d{12}:(user|group)/[^\s]+$")

DEEPLENS_TOPIC = "$aws/things/+/infer"
MAX_BUCKET_NAME = 63   # https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html


def model_bucket_name(project: str, account: str, region: str) -> str:
    """The model bucket's name: DeepLens reads models only from buckets named ``deeplens-...``."""
    return f"deeplens-{project}-models-{account}-{region}"


class SettingsError(ValueError):
    """A context value that cannot be used; the message names the key and what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        super().__init__(f"Invalid setting '{key}' = {value!r}: {allowed}. "
                         f"Set it in cdk.json 'context' or with `-c {key}=...`.")
        self.key = key


@dataclass(frozen=True)
class Settings:
    """Everything the stacks may vary on. Field names are the context keys."""

    project: str = "maskcam"
    account: str | None = None
    region: str = "us-east-1"
    glue_database: str = "awskrug"
    inference_topic: str = "maskcam/+/infer"
    lambda_function_name: str = "deeplens-mask-classifier"
    lambda_runtime: str = DEFAULT_PYTHON_RUNTIME
    greengrass_thing_group: str | None = None
    quicksight_principal_arn: str | None = None
    athena_bytes_scanned_cutoff_mb: int = 1024
    model_name: str = "mask-classifier"
    model_version: str = "1"
    greengrass_component_name: str = "com.maskcam.EdgeClassifier"
    model_export: str | None = None
    cloud_reserved_concurrency: int | None = None
    quicksight_import_mode: str = "SPICE"
    # operations (docs/operations.md): who is told, and when
    alarm_emails: tuple = ()
    alarm_period_minutes: int = 5
    firehose_freshness_alarm_seconds: int = 1800
    wifi_reject_alarm_percent: float = 10.0
    silent_device_minutes: int = 30
    compliance_min_percent: float = 70.0
    compliance_recovery_margin_percent: float = 5.0
    compliance_min_faces: int = 20
    compliance_window_hours: int = 1
    alert_schedule_minutes: int = 5
    alert_recovery: bool = True

    @property
    def model_prefix(self) -> str:
        """Key prefix of the published model export in the model bucket (``models/<name>/<version>/``)."""
        return f"models/{self.model_name}/{self.model_version}/"

    @property
    def inference_topics(self) -> tuple:
        """Topic filters the IoT rules read: the DeepLens one and the one V2 devices and the cloud use."""
        return (DEEPLENS_TOPIC, self.inference_topic)

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> Settings:
        """Builds settings from a context lookup such as ``app.node.try_get_context``."""
        values: dict[str, Any] = {}
        given: set[str] = set()
        for f in fields(cls):
            raw = get(f.name)
            if _is_unset(raw):
                values[f.name] = f.default
            else:
                values[f.name] = _PARSERS[f.name](f.name, raw)
                given.add(f.name)
        if values["model_export"]:
            _take_model_from_export(values, given)
        settings = cls(**values)
        settings._check_combination()
        return settings

    def _check_combination(self) -> None:
        """Rules that involve more than one setting."""
        bucket = model_bucket_name(self.project, "0" * 12, self.region)
        if len(bucket) > MAX_BUCKET_NAME:
            most = MAX_BUCKET_NAME - (len(bucket) - len(self.project))
            raise SettingsError("project", self.project,
                                f"the model bucket name {model_bucket_name(self.project, '<account>', self.region)} "
                                f"would be {len(bucket)} characters, S3 allows {MAX_BUCKET_NAME}; in {self.region} "
                                f"the project name can have at most {most} characters")
        if self.compliance_min_percent + self.compliance_recovery_margin_percent > 100:
            raise SettingsError("compliance_recovery_margin_percent", self.compliance_recovery_margin_percent,
                                f"at most {100 - self.compliance_min_percent:g} points with compliance_min_percent "
                                f"{self.compliance_min_percent:g}: a low-compliance episode closes at min + margin, "
                                "which must be a share a device can reach (100 % at most)")
        if self.greengrass_thing_group and not self.model_export:
            raise SettingsError("greengrass_thing_group", self.greengrass_thing_group,
                                "a Greengrass deployment needs the component, which needs a model export: also set "
                                "-c model_export=<export directory>")

    @classmethod
    def from_mapping(cls, context: Mapping[str, Any]) -> Settings:
        return cls.from_context(context.get)


def _take_model_from_export(values: dict, given: set) -> None:
    """The export names the model unless the settings do; when they do, they must agree: devices and the cloud
    classifier run the same model."""
    manifest = load_manifest(values["model_export"])
    for key, value in (("model_name", manifest.name), ("model_version", manifest.version)):
        if key not in given:
            values[key] = _PARSERS[key](key, value)
        elif values[key] != value:
            raise SettingsError(key, values[key], f"the model export {values['model_export']} is {manifest.name} "
                                                  f"version {manifest.version}; devices and the cloud classifier "
                                                  f"must run the same model, so set -c {key}={value}")


def _is_unset(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and raw.strip() in ("", "null", "none"))


def _matching(regex: re.Pattern, allowed: str) -> Callable[[str, Any], str]:
    def parse(key: str, raw: Any) -> str:
        value = str(raw).strip()
        if not regex.match(value):
            raise SettingsError(key, raw, allowed)
        return value
    return parse


def _runtime(key: str, raw: Any) -> str:
    value = str(raw).strip().lower()
    if value in BLOCKED_PYTHON_RUNTIMES:
        raise SettingsError(key, raw, f"{value} is {BLOCKED_PYTHON_RUNTIMES[value]}; "
                                      f"allowed: {', '.join(CREATABLE_PYTHON_RUNTIMES)}")
    if value not in CREATABLE_PYTHON_RUNTIMES:
        raise SettingsError(key, raw, f"allowed: {', '.join(CREATABLE_PYTHON_RUNTIMES)}")
    return value


def _topic(key: str, raw: Any) -> str:
    value = str(raw).strip()
    levels = value.split("/")
    if not value or value.startswith("$") or "#" in value or levels.count("+") != 1 \
            or any(level != "+" and "+" in level for level in levels):
        raise SettingsError(key, raw, "an MQTT topic filter not starting with '$', with exactly one '+', as a whole "
                                      "level (the device's thing name, which the IoT rule takes as device_id), and "
                                      "no '#' (e.g. maskcam/+/infer)")
    return value


def _export_dir(key: str, raw: Any) -> str:
    """A model export directory (``python -m model export``): manifest.json and the ONNX file the devices run."""
    path = Path(str(raw).strip()).expanduser().resolve()
    try:
        load_manifest(str(path)).path("onnx")
    except ManifestError as err:
        raise SettingsError(key, raw, f"a model export directory ({err}); build one with `python -m model export` "
                                      "(README 'Model pipeline')") from None
    return str(path)


def _import_mode(key: str, raw: Any) -> str:
    value = str(raw).strip().upper()
    if value not in QUICKSIGHT_IMPORT_MODES:
        raise SettingsError(key, raw, f"one of {', '.join(QUICKSIGHT_IMPORT_MODES)} (SPICE copies the data into "
                                      "QuickSight on each refresh, DIRECT_QUERY runs Athena on every visual)")
    return value


def _positive_int(key: str, raw: Any) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise SettingsError(key, raw, "a positive whole number") from None
    if value < 10:
        raise SettingsError(key, raw, "a whole number of megabytes, at least 10 (Athena's minimum cutoff)")
    return value


def _concurrency(key: str, raw: Any) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise SettingsError(key, raw, "a whole number of concurrent executions, 1-1000") from None
    if not 1 <= value <= 1000:
        raise SettingsError(key, raw, "a whole number of concurrent executions, 1-1000 (0 would stop the function)")
    return value


_EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


def _emails(key: str, raw: Any) -> tuple:
    """A list, or one string of addresses separated by commas, semicolons or spaces; duplicates dropped."""
    items = raw if isinstance(raw, (list, tuple)) else re.split(r"[,;\s]+", str(raw))
    found: list = []
    for item in items:
        address = str(item).strip()
        if not address:
            continue
        if len(address) > 254 or not _EMAIL_RE.match(address):
            raise SettingsError(key, raw, f"{address!r} is not an e-mail address; give addresses separated by commas "
                                          "(e.g. ops@example.com,oncall@example.com), each gets a subscription to "
                                          "confirm")
        if address.lower() not in (a.lower() for a in found):
            found.append(address)
    return tuple(found)


def _whole(low: int, high: int, what: str) -> Callable[[str, Any], int]:
    def parse(key: str, raw: Any) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise SettingsError(key, raw, f"a whole number of {what}, {low}-{high}") from None
        if isinstance(raw, bool) or not low <= value <= high:
            raise SettingsError(key, raw, f"a whole number of {what}, {low}-{high}")
        return value
    return parse


def _share(*, zero_allowed: bool, allowed: str) -> Callable[[str, Any], float]:
    """A percentage (a trailing ``%`` accepted) below 100, and above 0 unless ``zero_allowed``."""
    def parse(key: str, raw: Any) -> float:
        try:
            value = float(str(raw).strip().rstrip("%"))
        except ValueError:
            raise SettingsError(key, raw, allowed) from None
        if isinstance(raw, bool) or not (0 <= value if zero_allowed else 0 < value) or not value < 100:
            raise SettingsError(key, raw, allowed)
        return value
    return parse


_percent = _share(zero_allowed=False, allowed="a percentage above 0 and below 100")
_points = _share(zero_allowed=True, allowed="percentage points, at least 0 and below 100")


def _after_buffering(low_seconds: int, unit: int, what: str, high: int) -> Callable[[str, Any], int]:
    """A duration that must be longer than Firehose's buffering interval: data reaches S3 (and the metrics say it
    was delivered) only when a buffer is flushed, at the latest FLUSH_SECONDS after it arrived."""
    def parse(key: str, raw: Any) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            value = None
        if value is None or isinstance(raw, bool) or not low_seconds < value * unit <= high * unit:
            raise SettingsError(key, raw, f"a whole number of {what} above {low_seconds // unit} and at most {high}: "
                                          f"Firehose holds records up to {FLUSH_SECONDS} s (its buffering interval) "
                                          "before they reach S3, so a shorter limit would fire on healthy data")
        return value
    return parse


def _boolean(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise SettingsError(key, raw, "true or false")


_PARSERS: dict = {
    "project": _matching(_PROJECT_RE, "3-20 characters, lowercase letters, digits and '-', starting with a "
                                      "letter (it prefixes stack and bucket names)"),
    "account": _matching(_ACCOUNT_RE, "a 12-digit AWS account id, or unset for an account-agnostic synth"),
    "region": _matching(_REGION_RE, "an AWS region code such as us-east-1"),
    "glue_database": _matching(_GLUE_NAME_RE, "lowercase letters, digits and '_' (Athena database name)"),
    "inference_topic": _topic,
    "lambda_function_name": _matching(_LAMBDA_NAME_RE, "a Lambda name starting with 'deeplens' (DeepLens only "
                                                       "lists inference functions with that prefix), max 64 chars"),
    "lambda_runtime": _runtime,
    "greengrass_thing_group": _matching(_THING_GROUP_RE, "an IoT thing group name ([A-Za-z0-9:_-], max 128)"),
    "quicksight_principal_arn": _matching(_QS_PRINCIPAL_RE, "a QuickSight user or group ARN, e.g. "
                                                            "arn:aws:quicksight:us-east-1:123456789012:user/default/ops"),
    "athena_bytes_scanned_cutoff_mb": _positive_int,
    "model_name": _matching(_MODEL_NAME_RE, "lowercase letters, digits, '-' and '_' (the export's file prefix)"),
    "model_version": _matching(_MODEL_VERSION_RE, "letters, digits, '.', '-' and '_' (the export's version prefix)"),
    "greengrass_component_name": _matching(_COMPONENT_NAME_RE, "a Greengrass V2 component name such as "
                                                               "com.maskcam.EdgeClassifier"),
    "model_export": _export_dir,
    "cloud_reserved_concurrency": _concurrency,
    "quicksight_import_mode": _import_mode,
    "alarm_emails": _emails,
    "alarm_period_minutes": _whole(1, 60, "minutes (CloudWatch alarm periods are whole minutes for AWS metrics)"),
    "firehose_freshness_alarm_seconds": _after_buffering(FLUSH_SECONDS, 1, "seconds", 86_400),
    "wifi_reject_alarm_percent": _percent,
    "silent_device_minutes": _after_buffering(FLUSH_SECONDS, 60, "minutes", MAX_SILENT_MINUTES),
    "compliance_min_percent": _percent,
    "compliance_recovery_margin_percent": _points,
    "compliance_min_faces": _whole(1, 1_000_000, "faces"),
    "compliance_window_hours": _whole(1, 24, "hours"),
    "alert_schedule_minutes": _whole(1, 60, "minutes"),
    "alert_recovery": _boolean,
}
