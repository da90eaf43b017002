"""The dashboard stack: built only with a QuickSight principal (nag- and cfn-lint-clean), skipped with a note
otherwise; data source on the workgroup, datasets with derived column types, owner permissions, scoped IAM."""
from __future__ import annotations

import json
import pytest
from aws_cdk.assertions import Template

from functions.analytics import datasets, layout
from functions.wifi_ingest import layout as wifi_layout
from infra.stacks import dashboard_stack
from tests.cfn_lint import lint_errors
from tests.conftest import cdk_json_context, make_app, synth_project

PRINCIPAL = "arn:aws:quicksight:us-east-1:123456789012:user/default/ops"


@pytest.fixture(scope="module")
def with_dashboard(tmp_path_factory):
    """The whole app with a principal and direct-query mode, gates on (nag findings would raise here)."""
    stacks, assembly = synth_project(tmp_path_factory.mktemp("qs"), quicksight_principal_arn=PRINCIPAL,
                                     quicksight_import_mode="DIRECT_QUERY")
    return stacks, assembly


@pytest.fixture(scope="module")
def template(with_dashboard) -> Template:
    return Template.from_stack(with_dashboard[0].dashboard)


def test_default_app_has_no_dashboard_stack(project, templates):
    assert project.stacks.dashboard is None
    assert not any(name.endswith("-dashboard") for name in templates)


def test_with_a_principal_every_stack_passes_nag_and_cfn_lint(with_dashboard):
    stacks, assembly = with_dashboard
    names = {s.stack_name for s in assembly.stacks}
    assert "maskcam-dashboard" in names
    for stack in assembly.stacks:
        assert lint_errors(stack.template) == [], stack.stack_name


def test_app_says_on_stderr_why_the_dashboard_is_skipped(tmp_path, monkeypatch, capsys):
    import app

    # app.main() as the CLI runs it, with cdk.json's context (the jsii process never sees env changes made here)
    real_app = make_app(tmp_path)
    monkeypatch.setattr(app.cdk, "App", lambda: real_app)
    app.main()
    err = capsys.readouterr().err.strip().splitlines()
    notes = [line for line in err if "dashboard" in line]
    assert len(notes) == 1
    assert "maskcam-dashboard skipped" in notes[0] and "subscription" in notes[0]
    assert "-c quicksight_principal_arn=arn:aws:quicksight:<identity-region>:<account>:user/default/<name>" in notes[0]
    assert (tmp_path / "maskcam-storage.template.json").exists()
    assert not (tmp_path / "maskcam-dashboard.template.json").exists()


def test_skip_message_is_none_with_a_principal():
    from infra.settings import Settings

    assert dashboard_stack.skip_message(Settings(quicksight_principal_arn=PRINCIPAL)) is None
    assert "skipped" in dashboard_stack.skip_message(Settings())


def test_data_source_is_athena_on_the_project_workgroup_with_owner_permissions(template):
    template.resource_count_is("AWS::QuickSight::DataSource", 1)
    template.has_resource_properties("AWS::QuickSight::DataSource", {
        "Type": "ATHENA",
        "DataSourceId": "maskcam-athena",
        "AwsAccountId": {"Ref": "AWS::AccountId"},
        "DataSourceParameters": {"AthenaParameters": {"WorkGroup": "maskcam-analytics"}},
        "Permissions": [{"Principal": PRINCIPAL, "Actions": list(dashboard_stack.DATA_SOURCE_OWNER_ACTIONS)}],
    })


def data_sets(template):
    return {r["Properties"]["DataSetId"]: r["Properties"]
            for r in template.find_resources("AWS::QuickSight::DataSet").values()}


def test_compliance_dataset_reads_the_view_with_its_real_column_types(template):
    props = data_sets(template)["maskcam-mask-compliance-hourly"]
    assert props["ImportMode"] == "DIRECT_QUERY"
    table = props["PhysicalTableMap"]["mask-compliance-hourly"]["RelationalTable"]
    assert (table["Catalog"], table["Schema"], table["Name"]) == ("AwsDataCatalog", "awskrug", "mask_compliance_hourly")
    assert [(c["Name"], c["Type"]) for c in table["InputColumns"]] == [
        ("dt", "STRING"), ("device_id", "STRING"), ("hour", "DATETIME"), ("frames", "INTEGER"),
        ("faces", "INTEGER"), ("masked", "INTEGER"), ("unmasked", "INTEGER"), ("unknown", "INTEGER"),
        ("compliance_rate", "DECIMAL")]
    # the same columns, in order, that the view's SELECT returns in Athena
    (view,) = [q for q in datasets.view_queries() if q.name == datasets.COMPLIANCE_VIEW_QUERY]
    athena_types = datasets.output_types(datasets.view_select(view, "awskrug"), "awskrug")
    assert [c["Name"] for c in table["InputColumns"]] == [name for name, _ in athena_types]
    assert dict(athena_types)["hour"] == "timestamp(3)"
    assert table["DataSourceArn"]["Fn::GetAtt"][1] == "Arn"
    assert props["Permissions"][0]["Principal"] == PRINCIPAL
    assert sorted(props["Permissions"][0]["Actions"]) == sorted(dashboard_stack.DATA_SET_OWNER_ACTIONS)


def test_datasets_wait_for_the_views_created_by_the_analytics_stack(with_dashboard):
    stacks, assembly = with_dashboard
    for data_set in stacks.dashboard.data_sets.values():
        assert stacks.analytics.views in data_set.node.dependencies
    # cross-stack, so CDK makes it a stack dependency: the analytics stack (and its views) deploys first
    assert "maskcam-analytics" in [d.id for d in assembly.get_stack_by_name("maskcam-dashboard").dependencies]


def test_wifi_dataset_reads_the_table_with_types_from_the_layout(template):
    props = data_sets(template)["maskcam-free-wifi"]
    table = props["PhysicalTableMap"]["free-wifi"]["RelationalTable"]
    assert (table["Catalog"], table["Schema"], table["Name"]) == ("AwsDataCatalog", "awskrug",
                                                                  "free_wifi_standard_data")
    want = {"string": "STRING", "date": "DATETIME", "float": "DECIMAL"}
    assert [(c["Name"], c["Type"]) for c in table["InputColumns"]] == \
        [(c.name, want[c.glue_type]) for c in wifi_layout.COLUMNS]
    assert {"city", "service_provider"} <= {c["Name"] for c in table["InputColumns"]}


def test_import_mode_defaults_to_spice():
    from infra.settings import Settings, SettingsError

    assert Settings().quicksight_import_mode == "SPICE"
    assert Settings.from_mapping({"quicksight_import_mode": "direct_query"}).quicksight_import_mode == "DIRECT_QUERY"
    with pytest.raises(SettingsError, match="quicksight_import_mode.*SPICE, DIRECT_QUERY"):
        Settings.from_mapping({"quicksight_import_mode": "LIVE"})
    assert cdk_json_context()["quicksight_import_mode"] == "SPICE"


def statements(template):
    policies = template.find_resources("AWS::IAM::ManagedPolicy")
    assert len(policies) == 1
    props = next(iter(policies.values()))["Properties"]
    return props, {s["Sid"]: s for s in props["PolicyDocument"]["Statement"]}


def test_data_source_role_policy_is_scoped(template):
    props, by_sid = statements(template)
    assert len(props["Roles"]) == 1 and "Ref" in props["Roles"][0]
    text = json.dumps(props["PolicyDocument"])
    assert '"*"' not in text and "Resource\": \"*" not in text
    for statement in by_sid.values():
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions)
        assert not any(a.startswith(("s3:Delete", "glue:Create", "glue:Update", "glue:Delete")) for a in actions)

    assert json.dumps(by_sid["AthenaWorkGroup"]["Resource"]).endswith(':workgroup/maskcam-analytics"]]}')
    assert "athena:StartQueryExecution" in by_sid["AthenaWorkGroup"]["Action"]

    glue_resources = [json.dumps(r) for r in by_sid["GlueTables"]["Resource"]]
    tails = sorted(r.rsplit(":", 1)[1].rstrip('"]}') for r in glue_resources)
    assert tails == sorted(["catalog", "database/awskrug", f"table/awskrug/{layout.TABLE}",
                            f"table/awskrug/{wifi_layout.TABLE_NAME}", "table/awskrug/mask_compliance_hourly",
                            "table/awskrug/device_last_heartbeat"])

    read = sorted(json.dumps(r).rsplit('"/', 1)[1].rstrip('"]}') for r in by_sid["ReadTableData"]["Resource"])
    assert read == sorted([f"{layout.DATA_PREFIX}*", f"{wifi_layout.TABLE_PREFIX}*"])
    assert by_sid["ReadTableData"]["Action"] == "s3:GetObject"
    assert json.dumps(by_sid["QueryResults"]["Resource"]).endswith('"/athena-results/*"]]}')
    assert "s3:PutObject" in by_sid["QueryResults"]["Action"]
    assert sorted(by_sid["BucketListing"]["Condition"]["StringLike"]["s3:prefix"]) == \
        sorted([f"{layout.DATA_PREFIX}*", f"{wifi_layout.TABLE_PREFIX}*", "athena-results/*"])


def test_the_data_source_uses_a_role_of_its_own_not_the_account_wide_service_role(template):
    source, = template.find_resources("AWS::QuickSight::DataSource").values()
    role_ref = source["Properties"]["DataSourceParameters"]["AthenaParameters"]["RoleArn"]
    role_id = role_ref["Fn::GetAtt"][0]
    role = template.find_resources("AWS::IAM::Role")[role_id]["Properties"]
    statement, = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "quicksight.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    props, _ = statements(template)
    assert props["Roles"] == [{"Ref": role_id}]


def test_dataset_definitions_name_unknown_types():
    with pytest.raises(datasets.DatasetError, match="has no QuickSight column type"):
        datasets.quicksight_type("array<string>", where="x.y")
    with pytest.raises(datasets.DatasetError, match="cannot infer the type of output column 'z'"):
        datasets.output_types("SELECT nosuchfunction(ts) AS z FROM awskrug.inference_results", "awskrug")


@pytest.fixture(scope="module")
def spice(tmp_path_factory) -> Template:
    """The dashboard stack in SPICE mode (the default), with a silent threshold other than the query's default."""
    stacks, assembly = synth_project(tmp_path_factory.mktemp("qs-spice"), quicksight_principal_arn=PRINCIPAL,
                                     silent_device_minutes=45)
    assert lint_errors(assembly.get_stack_by_name("maskcam-dashboard").template) == []
    return Template.from_stack(stacks.dashboard)


def refresh_schedules(template):
    found = template.find_resources("AWS::QuickSight::RefreshSchedule").values()
    return {r["Properties"]["DataSetId"]: r for r in found}


def test_in_spice_mode_every_spice_dataset_has_a_refresh_schedule_and_the_silence_one_is_direct(spice):
    """A SPICE copy without a schedule stays as old as its first ingestion; the silent-devices table says "silent
    for N minutes now", so it is queried directly whatever the setting."""
    modes = {k: p["ImportMode"] for k, p in data_sets(spice).items()}
    assert modes == {"maskcam-mask-compliance-hourly": "SPICE", "maskcam-free-wifi": "SPICE",
                     "maskcam-device-silence": "DIRECT_QUERY"}
    schedules = refresh_schedules(spice)
    assert sorted(schedules) == ["maskcam-free-wifi", "maskcam-mask-compliance-hourly"]
    hourly = schedules["maskcam-mask-compliance-hourly"]["Properties"]["Schedule"]
    assert hourly["RefreshType"] == "FULL_REFRESH"
    assert hourly["ScheduleFrequency"] == {"Interval": "HOURLY", "TimeZone": "UTC"}
    daily = schedules["maskcam-free-wifi"]["Properties"]["Schedule"]
    assert daily["ScheduleFrequency"] == {"Interval": "DAILY", "TimeZone": "UTC",
                                          "TimeOfTheDay": dashboard_stack.REFRESH_TIME_OF_DAY}
    ids = {logical for logical, r in spice.find_resources("AWS::QuickSight::DataSet").items()
           if r["Properties"]["DataSetId"] in schedules}
    for schedule in schedules.values():
        assert schedule["Properties"]["AwsAccountId"] == {"Ref": "AWS::AccountId"}
        assert set(schedule["DependsOn"]) & ids     # created after its dataset


def test_in_direct_query_mode_nothing_is_scheduled(template):
    assert refresh_schedules(template) == {}
    assert {p["ImportMode"] for p in data_sets(template).values()} == {"DIRECT_QUERY"}


def test_the_silent_table_cuts_off_at_the_setting_the_alerts_use(spice, template):
    """silent_device_minutes (45 here) is what the alerts call silent; the dashboard's filter is the same value,
    not the named query's default (30)."""
    from functions.analytics import chart_spec

    assert chart_spec.silent_minutes_default() == 30

    def cut_off(t):
        (dashboard,) = t.find_resources("AWS::QuickSight::Dashboard").values()
        groups = dashboard["Properties"]["Definition"]["FilterGroups"]
        (group,) = [g for g in groups if g["FilterGroupId"] == "silent-devices-at-least"]
        return group["Filters"][0]["NumericRangeFilter"]["RangeMinimum"]["StaticValue"]

    assert cut_off(spice) == 45
    assert cut_off(template) == 30      # the default setting
