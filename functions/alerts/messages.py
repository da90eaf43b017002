"""What an alert says: which device, since when, the figure. SNS subjects must be under 100 characters without line
breaks or control characters (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html, Subject); e-mail clients
show them, so they are kept to printable ASCII."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

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
            return f"{ep.device_id} silent since {when(ep.since_ms)} ({alert.figure:.0f} min without a heartbeat)"
        return (f"{ep.device_id} heard again (silent since {when(ep.since_ms)}; last heartbeat "
                f"{alert.figure:.0f} min ago)")
    if alert.status == FIRING:
        return (f"{ep.device_id} mask compliance {alert.figure:.0%} of {alert.faces} faces since "
                f"{when(ep.since_ms)}")
    return (f"{ep.device_id} mask compliance back to {alert.figure:.0%} of {alert.faces} faces (low since "
            f"{when(ep.since_ms)})")


def subject(alert: Alert, project: str) -> str:
    state = "ALERT" if alert.status == FIRING else "OK"
    text = _UNSAFE.sub("?", f"[{project}] {state} {headline(alert)}")
    return text if len(text) <= MAX_SUBJECT else text[:MAX_SUBJECT - 3] + "..."


def body(alert: Alert, thresholds: Thresholds, project: str) -> str:
    """Plain text for e-mail, then the same facts as JSON for machines reading the topic."""
    ep = alert.episode
    if ep.kind == SILENT:
        rule = f"no heartbeat for more than {thresholds.silent_minutes} minutes"
    else:
        rule = (f"masked share below {thresholds.compliance_min:.0%} with at least {thresholds.min_faces} faces, "
                f"over the last {thresholds.window_hours} hour(s) rounded out to whole UTC hours")
    facts = {"project": project, "kind": ep.kind, "status": alert.status, "device_id": ep.device_id,
             "since": when(ep.since_ms), "since_ms": ep.since_ms, "evaluated_at": when(alert.at_ms),
             "figure": round(alert.figure, 4), "faces": alert.faces, "rule": rule}
    lines = [headline(alert), "", f"Rule: {rule}.", f"Evaluated at {when(alert.at_ms)}.",
             "One message when the episode starts" + (", one when it ends." if thresholds.send_recovery else "."),
             "", json.dumps(facts, ensure_ascii=False)]
    return "\n".join(lines)
