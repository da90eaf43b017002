"""The QuickSight analysis and dashboard as synthesized: one visual per chart of ``functions.analytics.chart_spec``
with exactly the spec's fields, kinds, sorts, limits and filters (in both resources, the same definition), every field
a column of its dataset with a type its aggregation fits, the principal's permissions and the publish options."""
from __future__ import annotations

import dataclasses

import pytest
from aws_cdk import aws_quicksight as quicksight
from aws_cdk.assertions import Template

from functions.analytics import chart_spec, datasets
from infra.constructs import quicksight_dashboard, quicksight_definition
from tests.aws_rules.support import resources
from tests.conftest import QUICKSIGHT_PRINCIPAL

KINDS = ("AWS::QuickSight::Analysis", "AWS::QuickSight::Dashboard")
VISUAL_KIND = {chart_spec.BAR: ("BarChartVisual", "CLUSTERED"),
               chart_spec.CLUSTERED_BAR: ("BarChartVisual", "CLUSTERED"),
               chart_spec.STACKED_BAR: ("BarChartVisual", "STACKED"), chart_spec.LINE: ("LineChartVisual", None),
               chart_spec.TABLE: ("TableVisual", None)}
WELLS = {"BarChartVisual": ("BarChartAggregatedFieldWells", "Category", "Colors", "Values"),
         "LineChartVisual": ("LineChartAggregatedFieldWells", "Category", "Colors", "Values"),
         "TableVisual": ("TableAggregatedFieldWells", "GroupBy", None, "Values")}


@pytest.fixture(scope="module")
def template(full_project) -> dict:
    return full_project.templates["maskcam-dashboard"]


def definitions(template):
    return {kind: r["Properties"]["Definition"] for kind in KINDS for _, r in resources(template, kind)}


def dataset_columns(template) -> dict:
    """Dataset key (its physical table's key) -> {column: QuickSight type}, as synthesized."""
    out = {}
    for _, r in resources(template, "AWS::QuickSight::DataSet"):
        ((key, table),) = r["Properties"]["PhysicalTableMap"].items()
        columns = table.get("RelationalTable", {}).get("InputColumns") or table["CustomSql"]["Columns"]
        out[key] = {c["Name"]: c["Type"] for c in columns}
    return out


def visuals(definition) -> dict:
    """Visual id -> (visual type, its body, sheet id)."""
    return {body["VisualId"]: (kind, body, sheet["SheetId"])
            for sheet in definition["Sheets"] for v in sheet["Visuals"] for kind, body in v.items()}


def field_summary(entry: dict) -> tuple:
    """(field type, column, aggregation, granularity, field id) of one field well entry."""
    ((kind, field),) = entry.items()
    aggregation = field.get("AggregationFunction")
    if isinstance(aggregation, dict):
        aggregation = aggregation["SimpleNumericalAggregation"]
    return kind, field["Column"]["ColumnName"], aggregation, field.get("DateGranularity"), field["FieldId"]


def wells(kind: str, body: dict) -> dict:
    """role -> field summary, read from the visual's field wells."""
    well, category, colors, values = WELLS[kind]
    found = body["ChartConfiguration"]["FieldWells"][well]
    out = {"category": field_summary(found[category][0])}
    if colors and found.get(colors):
        out["color"] = field_summary(found[colors][0])
    out.update({f"value{i}": field_summary(v) for i, v in enumerate(found[values])})
    return out


def expected_type(column_type: str, measure: bool) -> str:
    prefix = {"STRING": "Categorical", "DATETIME": "Date", "INTEGER": "Numerical", "DECIMAL": "Numerical"}
    return prefix[column_type] + ("MeasureField" if measure else "DimensionField")


def test_one_analysis_and_one_dashboard_with_the_same_definition(template):
    t = Template.from_json(template)
    t.resource_count_is("AWS::QuickSight::Analysis", 1)
    t.resource_count_is("AWS::QuickSight::Dashboard", 1)
    t.has_resource_properties("AWS::QuickSight::Analysis", {"AnalysisId": "maskcam-analysis",
                                                            "AwsAccountId": {"Ref": "AWS::AccountId"}})
    t.has_resource_properties("AWS::QuickSight::Dashboard", {"DashboardId": "maskcam-dashboard"})
    analysis, dashboard = definitions(template).values()
    assert analysis == dashboard
    assert "SourceEntity" not in json_of(template)   # a definition, not a template


def json_of(template) -> str:
    import json

    return json.dumps([r for kind in KINDS for _, r in resources(template, kind)])


def test_sheets_and_visual_count_follow_the_spec(template):
    for definition in definitions(template).values():
        assert [(s["SheetId"], s["Name"]) for s in definition["Sheets"]] == \
            [(s.id, s.title) for s in chart_spec.sheets()]
        for sheet, spec in zip(definition["Sheets"], chart_spec.sheets(), strict=True):
            assert [next(iter(v.values()))["VisualId"] for v in sheet["Visuals"]] == [c.id for c in spec.charts]
        assert sum(len(s["Visuals"]) for s in definition["Sheets"]) == len(chart_spec.charts()) == 4


@pytest.mark.parametrize("chart", chart_spec.charts(), ids=lambda c: c.id)
def test_each_chart_is_a_visual_with_the_spec_fields_in_analysis_and_dashboard(template, chart):
    columns = dataset_columns(template)[chart.dataset]
    for definition in definitions(template).values():
        kind, body, sheet_id = visuals(definition)[chart.id]
        want_kind, arrangement = VISUAL_KIND[chart.kind]
        assert kind == want_kind
        config = body["ChartConfiguration"]
        if arrangement:
            assert config["BarsArrangement"] == arrangement
            assert config["Orientation"] == ("HORIZONTAL" if chart.horizontal else "VERTICAL")
        assert body["Title"]["FormatText"]["PlainText"] == chart.title
        got = wells(kind, body)
        assert list(got) == [role for role, _ in chart.fields]
        for role, field in chart.fields:
            field_type, column, aggregation, granularity, field_id = got[role]
            assert (column, aggregation, granularity, field_id) == \
                (field.column, field.aggregation, field.granularity, chart.field_id(role))
            assert field_type == expected_type(columns[field.column], measure=field.aggregation is not None)
        sort_key = {"BarChartVisual": "CategorySort", "LineChartVisual": "CategorySort", "TableVisual": "RowSort"}[kind]
        (sort,) = config["SortConfiguration"][sort_key]
        assert sort["FieldSort"] == {"FieldId": chart.field_id(chart.role_of(chart.sort.by)),
                                     "Direction": chart.sort.direction}
        if chart.color_limit:
            assert config["SortConfiguration"]["ColorItemsLimit"] == {"ItemsLimit": chart.color_limit,
                                                                      "OtherCategories": "INCLUDE"}
        groups = [g for g in definition.get("FilterGroups", []) if g["FilterGroupId"].startswith(chart.id)]
        if chart.at_least:
            (group,) = groups
            (flt,) = group["Filters"]
            rng = flt["NumericRangeFilter"]
            assert rng["Column"] == {"DataSetIdentifier": chart.dataset, "ColumnName": chart.at_least.column}
            assert (rng["RangeMinimum"], rng["IncludeMinimum"]) == ({"StaticValue": chart.at_least.value}, True)
            assert group["ScopeConfiguration"]["SelectedSheets"]["SheetVisualScopingConfigurations"] == [
                {"SheetId": sheet_id, "Scope": "SELECTED_VISUALS", "VisualIds": [chart.id]}]
        else:
            assert groups == []


@pytest.mark.parametrize("chart", chart_spec.charts(), ids=lambda c: c.id)
def test_each_field_is_a_column_of_its_dataset_with_a_type_its_aggregation_fits(template, chart):
    columns = dataset_columns(template)[chart.dataset]
    for _, field in chart.fields:
        assert field.column in columns, (chart.id, field.column, sorted(columns))
        kind = columns[field.column]
        if field.aggregation:
            assert field.aggregation in chart_spec.AGGREGATIONS[kind]
        if field.granularity:
            assert kind == "DATETIME"
        if kind == "DATETIME" and not field.aggregation:
            assert field.granularity in chart_spec.GRANULARITIES
    if chart.at_least:
        assert columns[chart.at_least.column] in ("INTEGER", "DECIMAL")


def test_datasets_declared_are_the_ones_the_charts_read(template):
    for definition in definitions(template).values():
        declared = {d["Identifier"]: d["DataSetArn"]["Fn::GetAtt"][0]
                    for d in definition["DataSetIdentifierDeclarations"]}
        assert set(declared) == {c.dataset for c in chart_spec.charts()}
        for key, logical_id in declared.items():
            props = template["Resources"][logical_id]["Properties"]
            assert key in props["PhysicalTableMap"]


def test_the_silent_devices_dataset_is_custom_sql_over_the_heartbeat_view(template):
    (props,) = [r["Properties"] for _, r in resources(template, "AWS::QuickSight::DataSet")
                if r["Properties"]["DataSetId"] == "maskcam-device-silence"]
    sql = props["PhysicalTableMap"]["device-silence"]["CustomSql"]
    assert [(c["Name"], c["Type"]) for c in sql["Columns"]] == [
        ("device_id", "STRING"), ("last_seen", "DATETIME"), ("minutes_silent", "INTEGER")]
    assert "FROM awskrug.device_last_heartbeat" in sql["SqlQuery"] and "--" not in sql["SqlQuery"]
    assert sql["SqlQuery"] == datasets.device_silence("awskrug").sql


def test_permissions_analysis_owner_dashboard_viewer(template):
    t = Template.from_json(template)
    t.has_resource_properties("AWS::QuickSight::Analysis", {"Permissions": [
        {"Principal": QUICKSIGHT_PRINCIPAL, "Actions": list(quicksight_dashboard.ANALYSIS_OWNER_ACTIONS)}]})
    t.has_resource_properties("AWS::QuickSight::Dashboard", {"Permissions": [
        {"Principal": QUICKSIGHT_PRINCIPAL, "Actions": ["quicksight:DescribeDashboard", "quicksight:QueryDashboard",
                                                        "quicksight:ListDashboardVersions"]}]})
    assert len(quicksight_dashboard.ANALYSIS_OWNER_ACTIONS) == 7
    assert all(a.endswith("Analysis") or a.endswith("AnalysisPermissions")
               for a in quicksight_dashboard.ANALYSIS_OWNER_ACTIONS)


def test_publish_options(template):
    (_, dashboard), = resources(template, "AWS::QuickSight::Dashboard")
    options = dashboard["Properties"]["DashboardPublishOptions"]
    assert options["AdHocFilteringOption"] == {"AvailabilityStatus": "ENABLED"}
    assert options["ExportToCSVOption"] == {"AvailabilityStatus": "ENABLED"}
    assert options["SheetControlsOption"] == {"VisibilityState": "COLLAPSED"}
    assert options["ExportWithHiddenFieldsOption"] == {"AvailabilityStatus": "DISABLED"}
    assert dashboard["Properties"]["ValidationStrategy"] == {"Mode": "STRICT"}


def test_outputs_name_the_analysis_and_dashboard(template):
    outputs = template["Outputs"]
    assert {o["Value"] for k, o in outputs.items() if k.startswith(("AnalysisId", "DashboardId"))} == \
        {"maskcam-analysis", "maskcam-dashboard"}


# -- the spec is checked against the datasets at synth time ------------------------------------------------------
def _build(chart):
    by_key = datasets.by_key("awskrug")
    sheet = chart_spec.Sheet("s", "S", (chart,))
    return quicksight_definition.definition(quicksight.CfnAnalysis, sheets=[sheet], datasets=by_key,
                                            data_set_arns={k: f"arn:{k}" for k in by_key})


def test_synth_refuses_a_chart_naming_a_missing_column_or_an_unfit_aggregation():
    chart = chart_spec.charts()[0]
    _build(chart)
    with pytest.raises(quicksight_definition.DefinitionError, match="dataset free-wifi has no column 'province'"):
        _build(dataclasses.replace(chart, category=chart_spec.Field("province")))
    with pytest.raises(quicksight_definition.DefinitionError, match="SUM of city .STRING. is not a QuickSight"):
        value = chart_spec.Field("city", aggregation="SUM")
        _build(dataclasses.replace(chart, values=(value,), sort=chart_spec.Sort(value)))
    compliance = next(c for c in chart_spec.charts() if c.kind == chart_spec.LINE)
    with pytest.raises(quicksight_definition.DefinitionError, match="date column hour needs a granularity"):
        hour = chart_spec.Field("hour")
        _build(dataclasses.replace(compliance, category=hour, sort=chart_spec.Sort(hour)))
    with pytest.raises(quicksight_definition.DefinitionError, match="which the stack does not define"):
        quicksight_definition.definition(quicksight.CfnAnalysis, sheets=chart_spec.sheets(),
                                         datasets=datasets.by_key("awskrug"), data_set_arns={})


@pytest.mark.parametrize("change, message", [
    (dict(kind="pie"), "kind 'pie' is not one of"),
    (dict(values=()), "every value needs an aggregation"),
    (dict(color=None, kind=chart_spec.STACKED_BAR), "needs a colour field"),
    (dict(sort=chart_spec.Sort(chart_spec.Field("gungu"))), "neither its category nor a value"),
    (dict(color_limit=3), "color_limit is for bars with a colour field"),
])
def test_the_spec_refuses_charts_it_cannot_draw_the_same_way_in_both_places(change, message):
    with pytest.raises(chart_spec.ChartSpecError, match=message):
        dataclasses.replace(chart_spec.charts()[0], **change)


def test_chart_ids_are_unique_and_the_silent_threshold_is_the_named_querys():
    ids = [c.id for c in chart_spec.charts()]
    assert len(set(ids)) == len(ids)
    silent = next(c for c in chart_spec.charts() if c.at_least)
    assert silent.at_least.value == chart_spec.silent_minutes_default() == 30
