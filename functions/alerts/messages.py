"""What an alert says: which device, since when, the figure. SNS subjects must be under 100 characters without line
breaks or control characters (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html, Subject); e-mail clients
show them, so they are kept to printable ASCII, and so is the headline the e-mail body starts with (a device id is
untrusted text). ``fleet_subject``/``fleet_body``: one message for many devices gone silent (or back) at once."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from collections.abc import Sequence

from functions.alerts.evaluate import FIRING, SILENT, Alert, Thresholds

MAX_SUBJECT = 99
_UNSAFE = re.compile(r"[^\x20-\x7e]")


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def headline(alert: Alert) -> str:
    """One line: the device, what happened, since when, the figure."""
    ep = alert.episode
    if ep.kind == SILENT:
        if alert.status == FIRING:
            return f"{ep.device_id} silent since {when(ep.since_ms)} ({alert.figure:.0f} min without any event)"
        return (f"{ep.device_id} heard again (silent since {when(ep.since_ms)}; last event "
                f"{alert.figure:.0f} min ago)")
    if alert.status == FIRING:
        return (f"{ep.device_id} mask compliance {alert.figure:.0%} of {alert.faces} faces since "
                f"{when(ep.since_ms)}")
    return (f"{ep.device_id} mask compliance back to {alert.figure:.0%} of {alert.faces} faces (low since "
            f"{when(ep.since_ms)})")


def safe(text: str) -> str:
    """Printable ASCII only: anything else (line breaks, control and bidi characters, non-ASCII) becomes '?'."""
    return _UNSAFE.sub("?", text)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_SUBJECT else text[:MAX_SUBJECT - 3] + "..."


def subject(alert: Alert, project: str) -> str:
    state = "ALERT" if alert.status == FIRING else "OK"
    return _clip(safe(f"[{project}] {state} {headline(alert)}"))


def _silent_rule(thresholds: Thresholds) -> str:
    return f"no heartbeat or inference event received for more than {thresholds.silent_minutes} minutes"


def fleet_subject(alerts: Sequence[Alert], known: int, project: str) -> str:
    if alerts[0].status == FIRING:
        text = f"[{project}] ALERT {len(alerts)} of {known} devices silent at once (pipeline outage?)"
    else:
        text = f"[{project}] OK {len(alerts)} of {known} devices heard again"
    return _clip(safe(text))


def fleet_body(alerts: Sequence[Alert], known: int, thresholds: Thresholds, project: str) -> str:
    """One message for many devices' silent episodes that changed in the same run: a fleet-wide silence points at
    the pipeline (IoT rule, Firehose, Athena) or the site's network rather than at each camera."""
    firing = alerts[0].status == FIRING
    head = (f"{len(alerts)} of {known} known devices went silent in the same run: more likely the pipeline or the "
            "network than each camera (see the pipeline alarms and the operations dashboard)." if firing else
            f"{len(alerts)} of {known} known devices were heard again in the same run.")
    facts = {"project": project, "kind": SILENT, "status": alerts[0].status, "fleet": True, "known_devices": known,
             "evaluated_at": when(alerts[0].at_ms), "rule": _silent_rule(thresholds),
             "devices": [{"device_id": a.device_id, "since": when(a.episode.since_ms), "since_ms": a.episode.since_ms,
                          "figure": round(a.figure, 4)} for a in alerts]}
    lines = [safe(head), "", *(f"- {safe(headline(a))}" for a in alerts), "", f"Rule: {_silent_rule(thresholds)}.",
             f"Evaluated at {when(alerts[0].at_ms)}. Each device's episode is kept on its own: no further message "
             "for these devices until their episodes " + ("end." if firing else "start again."),
             "", json.dumps(facts, ensure_ascii=False)]
    return "\n".join(lines)


def body(alert: Alert, thresholds: Thresholds, project: str) -> str:
    """Plain text for e-mail, then the same facts as JSON for machines reading the topic."""
    ep = alert.episode
    if ep.kind == SILENT:
        rule = _silent_rule(thresholds)
    else:
        rule = (f"masked share below {thresholds.compliance_min:.0%} with at least {thresholds.min_faces} faces, "
                f"over the last {thresholds.window_hours} hour(s) rounded out to whole UTC hours")
    facts = {"project": project, "kind": ep.kind, "status": alert.status, "device_id": ep.device_id,
             "since": when(ep.since_ms), "since_ms": ep.since_ms, "evaluated_at": when(alert.at_ms),
             "figure": round(alert.figure, 4), "faces": alert.faces, "rule": rule}
    lines = [safe(headline(alert)), "", f"Rule: {rule}.", f"Evaluated at {when(alert.at_ms)}.",
             "One message when the episode starts" + (", one when it ends." if thresholds.send_recovery else "."),
             "", json.dumps(facts, ensure_ascii=False)]
    return "\n".join(lines)
