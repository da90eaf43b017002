"""Athena engine v3 refuses ``timestamp with time zone`` columns in views (and CTAS tables), which is what
``from_unixtime`` returns; the views in the synthesized template must not have such a column."""
from __future__ import annotations

import copy
import json

import pytest

from functions.analytics import datasets
from infra.constructs.athena_views import RESOURCE_TYPE
from tests.aws_rules.support import resources

STACK = "maskcam-analytics"


def view_resources(template):
    return [r["Properties"] for _, r in resources(template, RESOURCE_TYPE)]


def view_time_zone_columns(template) -> list:
    """``"<db>.<view>.<column>: <type>"`` for every output column of a deploy-time view typed
    ``timestamp ... with time zone``, using Trino's real return types (``datasets.output_types``).

    Athena engine version 3 returns ``timestamp(3) with time zone`` from ``from_unixtime`` and ``current_timestamp``
    (https://docs.aws.amazon.com/athena/latest/ug/engine-versions-reference-0003.html, "Breaking changes"), and
    refuses that type in views and CTAS tables; no local tool runs Athena's check, so this rule does it offline."""
    found = []
    for props in view_resources(template):
        for view in props["Views"]:
            database, name, select = datasets.split_view(view["Ddl"])
            for column, kind in datasets.output_types(select, database or props["Database"]):
                if "with time zone" in kind:
                    found.append(f"{database}.{name}.{column}: {kind}")
    return found


def test_the_synthesized_views_have_no_time_zone_column(templates):
    assert view_resources(templates[STACK]), "no deploy-time views resource in the analytics stack"
    assert view_time_zone_columns(templates[STACK]) == []


def test_the_rule_fails_on_a_view_built_with_from_unixtime(templates):
    broken = copy.deepcopy(templates[STACK])
    (props,) = view_resources(broken)
    view = next(v for v in props["Views"] if v["Name"] == "mask_compliance_hourly")
    old_hour = view["Ddl"][view["Ddl"].index("date_trunc('hour'"):view["Ddl"].index(" AS hour")]
    view["Ddl"] = view["Ddl"].replace(old_hour, "date_trunc('hour', from_unixtime(ts / 1e3))")
    assert view_time_zone_columns(broken) == ["awskrug.mask_compliance_hourly.hour: timestamp(3) with time zone"]


def create_view_texts(template):
    """Every CREATE VIEW statement in the template, wherever it is (named queries, custom resources, ...)."""
    found = []

    def walk(value):
        if isinstance(value, str):
            body = "\n".join(line for line in value.splitlines() if not line.lstrip().startswith("--"))
            if body.lstrip().upper().startswith("CREATE") and " VIEW " in body.upper().split(" AS", 1)[0] + " ":
                found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(template["Resources"])
    return found


def test_every_view_in_the_template_is_created_by_the_deploy_time_resource(templates):
    template = templates[STACK]
    run_at_deploy = [v["Ddl"] for props in view_resources(template) for v in props["Views"]]
    everywhere = create_view_texts(template)
    assert sorted(everywhere) == sorted(run_at_deploy)   # none only as a named query (run by nobody)
    expected = [datasets.view_ddl(q, "awskrug") for q in datasets.view_queries()]
    assert sorted(run_at_deploy) == sorted(expected) and expected
    named = [r["Properties"]["QueryString"] for _, r in resources(template, "AWS::Athena::NamedQuery")]
    assert not any("CREATE OR REPLACE VIEW" in q.upper() for q in named)
    assert "from_unixtime" not in json.dumps(run_at_deploy)


@pytest.mark.parametrize("text, is_view", [
    ("CREATE OR REPLACE VIEW db.v AS SELECT 1", True),
    ("-- c\nCREATE VIEW v AS\nSELECT 1", True),
    ("SELECT 'CREATE VIEW' AS x", False),
    ("CREATE EXTERNAL TABLE t (a int)", False),
])
def test_create_view_texts_finds_views_only(text, is_view):
    assert create_view_texts({"Resources": {"R": {"Properties": {"Q": text}}}}) == ([text] if is_view else [])
