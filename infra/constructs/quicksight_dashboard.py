"""The QuickSight analysis and dashboard of the project, both built from the chart specification
(``functions.analytics.chart_spec``) with a ``Definition`` (no template), over the stack's datasets.

Permissions for the one configured principal (a user or a group ARN), as the QuickSight developer guide lists them:
the analysis with the owner actions (https://docs.aws.amazon.com/quicksight/latest/developerguide/
update-analysis-permissions.html), so the principal can open it, explore and save a copy; the dashboard with the
viewer actions only (https://docs.aws.amazon.com/quicksight/latest/developerguide/update-dashboard-permissions.html):
the dashboard is published by the stack, so nobody republishes, reshares or deletes it from the console, where the
next deploy would silently undo it. ``.analysis``, ``.dashboard``, ``.analysis_id``, ``.dashboard_id``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Aws
from aws_cdk import aws_quicksight as quicksight
from constructs import Construct

from functions.analytics.chart_spec import Sheet
from functions.analytics.datasets import Dataset
from infra.constructs.quicksight_definition import definition

ANALYSIS_OWNER_ACTIONS = (
    "quicksight:RestoreAnalysis", "quicksight:UpdateAnalysisPermissions", "quicksight:DeleteAnalysis",
    "quicksight:QueryAnalysis", "quicksight:DescribeAnalysisPermissions", "quicksight:DescribeAnalysis",
    "quicksight:UpdateAnalysis",
)
DASHBOARD_VIEWER_ACTIONS = ("quicksight:DescribeDashboard", "quicksight:QueryDashboard",
                            "quicksight:ListDashboardVersions")


def _enabled(ns, name: str, on: bool = True):
    return getattr(ns, f"{name}Property")(availability_status="ENABLED" if on else "DISABLED")


def publish_options():
    """What readers of the published dashboard may do: filter ad hoc, export a visual to CSV, drill, sort, use the
    visual menu and maximize a visual; sheet controls start collapsed; hidden fields are never exported."""
    ns = quicksight.CfnDashboard
    return ns.DashboardPublishOptionsProperty(
        ad_hoc_filtering_option=_enabled(ns, "AdHocFilteringOption"),
        export_to_csv_option=_enabled(ns, "ExportToCSVOption"),
        sheet_controls_option=ns.SheetControlsOptionProperty(visibility_state="COLLAPSED"),
        data_point_drill_up_down_option=_enabled(ns, "DataPointDrillUpDownOption"),
        data_point_menu_label_option=_enabled(ns, "DataPointMenuLabelOption"),
        data_point_tooltip_option=_enabled(ns, "DataPointTooltipOption"),
        sheet_layout_element_maximization_option=_enabled(ns, "SheetLayoutElementMaximizationOption"),
        visual_axis_sort_option=_enabled(ns, "VisualAxisSortOption"),
        visual_menu_option=_enabled(ns, "VisualMenuOption"),
        export_with_hidden_fields_option=_enabled(ns, "ExportWithHiddenFieldsOption", on=False),
    )


class QuickSightDashboard(Construct):
    """``AWS::QuickSight::Analysis`` and ``AWS::QuickSight::Dashboard`` with the same definition: ``sheets`` of the
    spec over ``data_sets`` (dataset key -> the stack's ``CfnDataSet``, described by ``datasets``)."""

    def __init__(self, scope: Construct, id: str, *, project: str, principal: str, sheets: Sequence[Sheet],
                 datasets: Mapping[str, Dataset], data_sets: Mapping[str, quicksight.CfnDataSet]) -> None:
        super().__init__(scope, id)
        arns = {key: data_set.attr_arn for key, data_set in data_sets.items()}
        self.analysis_id, self.dashboard_id = f"{project}-analysis", f"{project}-dashboard"
        # STRICT: QuickSight refuses a definition with errors, so the deploy fails instead of leaving a broken visual.
        self.analysis = quicksight.CfnAnalysis(
            self, "Analysis", aws_account_id=Aws.ACCOUNT_ID, analysis_id=self.analysis_id,
            name=f"{project}: mask compliance and free Wi-Fi",
            definition=definition(quicksight.CfnAnalysis, sheets=sheets, datasets=datasets, data_set_arns=arns),
            validation_strategy=quicksight.CfnAnalysis.ValidationStrategyProperty(mode="STRICT"),
            permissions=[quicksight.CfnAnalysis.ResourcePermissionProperty(
                principal=principal, actions=list(ANALYSIS_OWNER_ACTIONS))])
        self.dashboard = quicksight.CfnDashboard(
            self, "Dashboard", aws_account_id=Aws.ACCOUNT_ID, dashboard_id=self.dashboard_id,
            name=f"{project}: mask compliance and free Wi-Fi",
            definition=definition(quicksight.CfnDashboard, sheets=sheets, datasets=datasets, data_set_arns=arns),
            validation_strategy=quicksight.CfnDashboard.ValidationStrategyProperty(mode="STRICT"),
            dashboard_publish_options=publish_options(),
            version_description="published by the dashboard stack from functions/analytics/chart_spec.py",
            permissions=[quicksight.CfnDashboard.ResourcePermissionProperty(
                principal=principal, actions=list(DASHBOARD_VIEWER_ACTIONS))])
