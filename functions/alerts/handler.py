"""Lambda on an EventBridge schedule: runs the two alert queries in the project's Athena workgroup, evaluates them
(``functions.alerts.evaluate``, no AWS in there) against the episode state in DynamoDB and publishes each new or
ended episode to the operators' SNS topic.

Once per episode, also when runs overlap or a publish fails: an episode change is first *claimed* with a
conditional write on the episode's version (a run that loses the race publishes nothing), then published; when the
publish fails (``ClientError`` from the service or ``BotoCoreError`` such as EndpointConnectionError or
ReadTimeoutError: no answer at all) the claim is undone (again conditionally), so the next run tries again, and the
run fails (its Errors alarm fires). With less than ``CLAIM_MARGIN_MS`` of the invocation left, no further change is
claimed: those are left to the next run rather than claimed and then cut off by the timeout. Many devices silent in
one run go out as one fleet-wide message (``evaluate.messages``). The table is only written, never deleted from: a
closed episode stays as the base of the next one.

Environment (set by ``infra/constructs/device_alerts.py``): ``WORKGROUP``, ``STATE_TABLE``, ``TOPIC_ARN``,
``PROJECT``, ``HEARTBEATS_SQL``, ``COMPLIANCE_SQL``, ``SILENT_MINUTES``, ``COMPLIANCE_MIN`` (0..1), ``MIN_FACES``,
``WINDOW_HOURS``, ``SEND_RECOVERY`` (true/false), ``COMPLIANCE_MARGIN`` (0..1, hysteresis of the compliance close).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from functions.alerts import messages
from functions.alerts.evaluate import KINDS, Alert, Episode, Rows, State, Thresholds, evaluate
from functions.alerts.evaluate import messages as outcome_messages

logger = logging.getLogger("alerts")
logger.setLevel(logging.INFO)

META_KEY = "#meta"              # device ids are thing names ([A-Za-z0-9:_-]): no episode key starts with '#'
POLL_SECONDS = 1.0
SAFETY_MS = 10_000              # stop waiting for Athena this long before the Lambda's own timeout
# Claim no further episode change with less than this left: the claim, the publish and (should the publish fail)
# the undo must all finish before the Lambda is stopped, or the episode would stay claimed but unsent. With
# CLIENT_CONFIG a call gives up after 2 attempts x (2 s connect + 5 s read) = 14 s, so publish + undo fit in 30 s;
# changes left unclaimed are decided again by the next run.
CLAIM_MARGIN_MS = 30_000
CLIENT_CONFIG = BotoConfig(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 2, "mode": "standard"})
SEND_ERRORS = (ClientError, BotoCoreError)


class AlertRunError(RuntimeError):
    """Raised at the end of a run in which some alert could not be sent (its claim was undone)."""


@dataclass(frozen=True)
class Config:
    workgroup: str
    table: str
    topic_arn: str
    project: str
    heartbeats_sql: str
    compliance_sql: str
    thresholds: Thresholds

    @classmethod
    def from_env(cls, env=os.environ) -> Config:
        return cls(workgroup=env["WORKGROUP"], table=env["STATE_TABLE"], topic_arn=env["TOPIC_ARN"],
                   project=env.get("PROJECT", "maskcam"), heartbeats_sql=env["HEARTBEATS_SQL"],
                   compliance_sql=env["COMPLIANCE_SQL"],
                   thresholds=Thresholds(silent_minutes=int(env["SILENT_MINUTES"]),
                                         compliance_min=float(env["COMPLIANCE_MIN"]),
                                         min_faces=int(env["MIN_FACES"]), window_hours=int(env["WINDOW_HOURS"]),
                                         send_recovery=env.get("SEND_RECOVERY", "true").lower() == "true",
                                         compliance_margin=float(env.get("COMPLIANCE_MARGIN", "0.05"))))


# -- Athena --------------------------------------------------------------------------------------------------------
class AthenaRows:
    """Runs one SELECT in ``workgroup`` (whose enforced settings give the result location and the scan cutoff) and
    returns its rows as dicts of column -> text (None for SQL NULL)."""

    def __init__(self, client, workgroup: str, remaining_ms: Callable[[], int] = lambda: 60_000,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._client, self._workgroup, self._remaining_ms, self._sleep = client, workgroup, remaining_ms, sleep

    def __call__(self, sql: str) -> list[dict[str, str | None]]:
        query_id = self._client.start_query_execution(QueryString=sql, WorkGroup=self._workgroup)["QueryExecutionId"]
        while True:
            status = self._client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
            state = status["State"]
            if state == "SUCCEEDED":
                break
            if state in ("FAILED", "CANCELLED"):
                raise RuntimeError(f"Athena query {query_id} {state}: {status.get('StateChangeReason', '')}")
            if self._remaining_ms() < SAFETY_MS:
                raise TimeoutError(f"Athena query {query_id} still {state} when the run had to stop")
            self._sleep(POLL_SECONDS)
        return self._results(query_id)

    def _results(self, query_id: str) -> list[dict[str, str | None]]:
        rows, columns, token = [], None, None
        while True:
            page = self._client.get_query_results(QueryExecutionId=query_id, **({"NextToken": token} if token else {}))
            result = page["ResultSet"]
            if columns is None:
                columns = [c["Name"] for c in result["ResultSetMetadata"]["ColumnInfo"]]
                data = result["Rows"][1:]      # the first row of a SELECT's first page holds the column names
            else:
                data = result["Rows"]
            # a row with fewer cells than columns (never seen) leaves the rest out rather than failing the run
            rows += [dict(zip(columns, (cell.get("VarCharValue") for cell in row["Data"]), strict=False))
                     for row in data]
            token = page.get("NextToken")
            if not token:
                return rows


# -- DynamoDB ------------------------------------------------------------------------------------------------------
def _item(ep: Episode) -> dict:
    item = {"pk": {"S": f"{ep.kind}#{ep.device_id}"}, "kind": {"S": ep.kind}, "device_id": {"S": ep.device_id},
            "open": {"BOOL": ep.open}, "since_ms": {"N": str(ep.since_ms)}, "figure": {"N": repr(float(ep.figure))},
            "changed_ms": {"N": str(ep.changed_ms)}, "version": {"N": str(ep.version)}}
    if ep.faces is not None:
        item["faces"] = {"N": str(ep.faces)}
    return item


def _episode(item: dict) -> Episode | None:
    try:
        kind = item["kind"]["S"]
        if kind not in KINDS:
            return None
        return Episode(kind=kind, device_id=item["device_id"]["S"], open=bool(item["open"]["BOOL"]),
                       since_ms=int(item["since_ms"]["N"]), figure=float(item["figure"]["N"]),
                       faces=int(item["faces"]["N"]) if "faces" in item else None,
                       changed_ms=int(item["changed_ms"]["N"]), version=int(item["version"]["N"]))
    except (KeyError, TypeError, ValueError):
        return None


class EpisodeTable:
    """Episode state: one item per (kind, device), key ``pk`` = ``<kind>#<device>``, and ``#meta`` holding the last
    run's time."""

    def __init__(self, client, table: str) -> None:
        self._client, self._table = client, table

    def load(self) -> State:
        episodes, evaluated, start = {}, None, None
        while True:
            page = self._client.scan(TableName=self._table, ConsistentRead=True,
                                     **({"ExclusiveStartKey": start} if start else {}))
            for item in page.get("Items", []):
                if item.get("pk", {}).get("S") == META_KEY:
                    evaluated = int(item["evaluated_ms"]["N"])
                    continue
                episode = _episode(item)
                if episode is None:
                    logger.warning("unreadable state item skipped: %s", json.dumps(item)[:500])
                    continue
                episodes[episode.key] = episode
            start = page.get("LastEvaluatedKey")
            if not start:
                return State(evaluated, episodes)

    def claim(self, alert: Alert) -> bool:
        """Writes the episode's new version if nobody changed it since this run read it."""
        return self._put(_item(alert.episode), alert.previous.version if alert.previous else None)

    def undo(self, alert: Alert) -> None:
        """Puts back what was there (closed when nothing was), one version further, so the next run sees the change
        again."""
        before = alert.previous or Episode(alert.kind, alert.device_id, False, alert.episode.since_ms,
                                           alert.episode.figure, alert.episode.faces, alert.at_ms)
        restored = Episode(**{**before.__dict__, "version": alert.episode.version + 1})
        if not self._put(_item(restored), alert.episode.version):
            logger.error("could not undo the claim of %s (changed meanwhile)", alert.episode.key)

    def mark_evaluated(self, now_ms: int) -> None:
        try:
            self._client.put_item(TableName=self._table,
                                  Item={"pk": {"S": META_KEY}, "evaluated_ms": {"N": str(now_ms)}},
                                  ConditionExpression="attribute_not_exists(pk) OR evaluated_ms < :now",
                                  ExpressionAttributeValues={":now": {"N": str(now_ms)}})
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def _put(self, item: dict, version: int | None) -> bool:
        condition: dict[str, Any]
        if version is None:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {"ConditionExpression": "version = :v",
                         "ExpressionAttributeValues": {":v": {"N": str(version)}}}
        try:
            self._client.put_item(TableName=self._table, Item=item, **condition)
            return True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise


# -- the run -------------------------------------------------------------------------------------------------------
def run(config: Config, *, query: Callable[[str], list], table: EpisodeTable, sns, now_ms: int,
        remaining_ms: Callable[[], int] = lambda: 60_000) -> dict:
    rows = Rows(heartbeats=query(config.heartbeats_sql), compliance=query(config.compliance_sql))
    outcome = evaluate(rows, table.load(), now_ms, config.thresholds)
    if outcome.skipped:
        logger.warning("run skipped: %s", outcome.skipped)
        return {"skipped": outcome.skipped, "sent": [], "ignored_rows": outcome.ignored, "deferred": []}
    if outcome.ignored:
        logger.warning("%d query rows were unusable and ignored", outcome.ignored)
    tally = _Tally()
    for alert in outcome.alerts:        # changes nobody is told about (recoveries with send_recovery off)
        if not alert.notify and not table.claim(alert):
            tally.lost.append(messages.headline(alert))
    for group in outcome_messages(outcome, config.thresholds):
        if remaining_ms() < CLAIM_MARGIN_MS:    # too late to claim, publish and maybe undo: the next run decides
            tally.deferred += [messages.headline(a) for a in group]
        else:
            _send(group, config, table, sns, outcome.known_devices, tally)
    sent, lost, failed, deferred = tally.sent, tally.lost, tally.failed, tally.deferred
    table.mark_evaluated(now_ms)
    logger.info(json.dumps({"sent": sent, "taken_by_another_run": lost, "failed": failed, "deferred": deferred,
                            "ignored_rows": outcome.ignored}))
    if deferred:
        logger.warning("%d alert(s) left to the next run: less than %d ms left", len(deferred), CLAIM_MARGIN_MS)
    if failed:
        raise AlertRunError(f"{len(failed)} alert(s) could not be published and will be retried: {failed}")
    return {"skipped": None, "sent": sent, "ignored_rows": outcome.ignored, "deferred": deferred}


@dataclass
class _Tally:
    sent: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)       # another run decided this change already
    failed: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)


def _send(group: list[Alert], config: Config, table: EpisodeTable, sns, known: int, tally: _Tally) -> None:
    """Claims the group's changes, publishes one message for those claimed, undoes the claims if that fails."""
    claimed = []
    for alert in group:
        if table.claim(alert):
            claimed.append(alert)
        else:
            tally.lost.append(messages.headline(alert))
    if not claimed:
        return
    try:
        _publish(sns, config, claimed, known, fleet=len(group) > 1)
        tally.sent += [messages.headline(a) for a in claimed]
    except SEND_ERRORS as err:
        logger.error("publish failed for %s: %s", [a.episode.key for a in claimed], err)
        for alert in claimed:
            _undo(table, alert)
        tally.failed += [messages.headline(a) for a in claimed]


def _publish(sns, config: Config, alerts: list[Alert], known: int, *, fleet: bool) -> None:
    if fleet:
        subject = messages.fleet_subject(alerts, known, config.project)
        body = messages.fleet_body(alerts, known, config.thresholds, config.project)
    else:
        subject = messages.subject(alerts[0], config.project)
        body = messages.body(alerts[0], config.thresholds, config.project)
    sns.publish(TopicArn=config.topic_arn, Subject=subject, Message=body)


def _undo(table: EpisodeTable, alert: Alert) -> None:
    try:
        table.undo(alert)
    except SEND_ERRORS as err:   # DynamoDB unreachable too: the claim stays; logged for the operator
        logger.error("could not undo the claim of %s, it stays claimed but unsent: %s", alert.episode.key, err)


def handler(event, context) -> dict:
    config = Config.from_env()
    remaining = getattr(context, "get_remaining_time_in_millis", lambda: 60_000)
    return run(config, query=AthenaRows(boto3.client("athena", config=CLIENT_CONFIG), config.workgroup, remaining),
               table=EpisodeTable(boto3.client("dynamodb", config=CLIENT_CONFIG), config.table),
               sns=boto3.client("sns", config=CLIENT_CONFIG), now_ms=int(time.time() * 1000), remaining_ms=remaining)
