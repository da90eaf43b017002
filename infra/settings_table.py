"""The settings reference, ``docs/settings.md``, generated from ``Settings``: every field, its default and what it
means. ``python -m infra.settings_table`` rewrites the page; ``tests/test_settings_table.py`` fails when the page is
stale or a field of ``Settings`` has no description here."""
from __future__ import annotations

import sys
from dataclasses import MISSING, fields
from pathlib import Path

from infra.settings import Settings

PAGE = Path(__file__).resolve().parent.parent / "docs" / "settings.md"

DESCRIPTIONS = {
    "project": "prefix of stack names, bucket names and the Athena workgroup (3-20 chars, `[a-z0-9-]`; shorter in "
               "long region names, since the model bucket name has at most 63 characters)",
    "account": "12-digit account id; unset synthesizes account-agnostic templates (`cdk deploy` uses your "
               "credentials' account)",
    "region": "deployment region (the workshop ran in N. Virginia)",
    "glue_database": "Glue/Athena database for inference results and Wi-Fi data",
    "inference_topic": "MQTT topic filter Greengrass V2 devices and the cloud classifier publish to, with exactly "
                       "one `+` level: the thing name, which the IoT rule takes as `device_id` (never the "
                       "payload's); the DeepLens topic `$aws/things/+/infer` is always read as well",
    "lambda_function_name": "inference Lambda name; must start with `deeplens`",
    "lambda_runtime": "runtime of the stack's Lambdas: `python3.10`...`python3.14` (2.7 and 3.7 can no longer be "
                      "created, 3.8/3.9 are deprecated; 3.13 is the newest the tests can execute)",
    "greengrass_thing_group": "IoT thing group to deploy the Greengrass V2 component to (needs `model_export`); "
                              "unset = no deployment",
    "quicksight_principal_arn": "QuickSight user/group ARN; unset = the dashboard stack is skipped",
    "athena_bytes_scanned_cutoff_mb": "per-query scan limit of the workgroup (MB, at least 10)",
    "model_name": "model export name: files `<name>.onnx` etc. under `models/<name>/<version>/` of the model "
                  "bucket; must match the export's when both are given",
    "model_version": "model export version (the key prefix level the cloud classifier reads)",
    "greengrass_component_name": "Greengrass V2 component name; its version is derived from the recipe's content",
    "model_export": "model export directory (`python -m model export`) shipped in the Greengrass component; unset "
                    "= no component (and no deployment)",
    "cloud_reserved_concurrency": "reserved concurrent executions of the inference Lambda (1-1000); unset because "
                                  "accounts with a low concurrency quota cannot reserve any (`make preflight` "
                                  "checks)",
    "quicksight_import_mode": "import mode of the QuickSight datasets: `SPICE` (copied into QuickSight, refreshed "
                              "on a schedule) or `DIRECT_QUERY` (Athena runs on every visual)",
    # operations (docs/operations.md)
    "alarm_emails": "e-mail addresses subscribed to the operator topic (alarms and device alerts), comma-separated; "
                    "each must confirm SNS's mail; unset = the topic has no subscriber",
    "alarm_period_minutes": "period of the pipeline alarms, whole minutes (1-60)",
    "firehose_freshness_alarm_seconds": "alarm when Firehose's oldest undelivered record is older than this "
                                        "(must exceed its 900 s buffering interval)",
    "wifi_reject_alarm_percent": "alarm when the Wi-Fi ingest rejects more than this share of the rows in a period",
    "silent_device_minutes": "a device without a heartbeat for longer than this is alerted as silent (must exceed "
                             "Firehose's 15-minute buffering interval)",
    "compliance_min_percent": "a device whose masked share of faces is below this over the window is alerted",
    "compliance_recovery_margin_percent": "hysteresis of the low-compliance alert, percentage points: an open "
                                          "episode ends only when the masked share is back at "
                                          "`compliance_min_percent` + this (0 = no hysteresis; min + margin at most "
                                          "100), so a share hovering around the threshold does not alert every run",
    "compliance_min_faces": "faces a device must have seen in the window before its compliance is judged",
    "compliance_window_hours": "compliance window: the last N hours, rounded out to whole UTC hours (1-24)",
    "alert_schedule_minutes": "how often the device alerts are evaluated (1-60 minutes; each run is two Athena "
                              "queries)",
    "alert_recovery": "also send a message when a device alert's episode ends",
}

# Where the default is not simply the field's own.
DEFAULT_TEXT = {
    "model_name": "the export's, else `mask-classifier`",
    "model_version": "the export's, else `1`",
}


class MissingDescription(KeyError):
    pass


def _default(f) -> str:
    if f.name in DEFAULT_TEXT:
        return DEFAULT_TEXT[f.name]
    value = f.default if f.default is not MISSING else (
        f.default_factory() if f.default_factory is not MISSING else None)
    if value is None or value == () or value == []:
        return "unset"
    if isinstance(value, (list, tuple)):
        return ", ".join(f"`{v}`" for v in value)
    return f"`{value}`"


def render() -> str:
    missing = [f.name for f in fields(Settings) if f.name not in DESCRIPTIONS]
    if missing:
        raise MissingDescription(f"setting(s) {', '.join(missing)} have no description: add them to DESCRIPTIONS "
                                 f"in infra/settings_table.py, then run `.venv/bin/python -m infra.settings_table`")
    rows = "\n".join(f"| `{f.name}` | {_default(f)} | {DESCRIPTIONS[f.name]} |" for f in fields(Settings))
    return (
        "# Settings\n\n"
        "<!-- generated by `python -m infra.settings_table` from infra/settings.py; do not edit by hand -->\n\n"
        "Parsed once into `infra.settings.Settings` from CDK context: defaults in `cdk.json`, overrides with "
        "`-c key=value`\n(e.g. `node_modules/.bin/cdk synth -c region=ap-northeast-2 -c project=lobby`). A bad value "
        "stops synth with\n`Invalid setting '<key>' = <value>: <what is allowed>`.\n\n"
        "| key | default | meaning |\n|---|---|---|\n" + rows + "\n")


def main() -> int:
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
