"""QuickSight visuals from the chart specification (``functions.analytics.chart_spec``): one builder for the
analysis and the dashboard. ``ns`` is ``CfnAnalysis`` or ``CfnDashboard``; both carry the same property classes, so
the two definitions are built by the same code from the same spec.

Each spec field becomes the field type its column's QuickSight type calls for (STRING: categorical, INTEGER/DECIMAL:
numerical, DATETIME: date with the spec's granularity), so a chart naming a column its dataset does not have, or an
aggregation the type cannot take, stops synth here rather than failing in QuickSight.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from functions.analytics import chart_spec
from functions.analytics.chart_spec import AtLeast, Chart, Field, Sheet
from functions.analytics.datasets import Dataset

GRID_COLUMNS = 36          # QuickSight's grid layout is 36 columns wide (GridLayoutElement ColumnSpan 1-36)
VISUAL_COLUMNS, VISUAL_ROWS = 18, 12
NUMERIC = ("INTEGER", "DECIMAL")


class DefinitionError(ValueError):
    """A chart that does not fit its dataset; the message names the chart, column and dataset."""


def column_type(chart: Chart, field: Field, dataset: Dataset) -> str:
    types = dict(dataset.columns)
    if field.column not in types:
        raise DefinitionError(f"chart {chart.id}: dataset {dataset.key} has no column {field.column!r} "
                              f"(it has {', '.join(types)})")
    kind = types[field.column]
    if field.aggregation and field.aggregation not in chart_spec.AGGREGATIONS[kind]:
        raise DefinitionError(f"chart {chart.id}: {field.aggregation} of {field.column} ({kind}) is not a QuickSight "
                              f"aggregation for that type ({', '.join(chart_spec.AGGREGATIONS[kind])})")
    if kind == "DATETIME" and not field.aggregation and field.granularity not in chart_spec.GRANULARITIES:
        raise DefinitionError(f"chart {chart.id}: date column {field.column} needs a granularity")
    if kind != "DATETIME" and field.granularity:
        raise DefinitionError(f"chart {chart.id}: {field.column} is {kind}, a granularity is for dates")
    return kind


class _Builder:
    def __init__(self, ns, datasets: Mapping[str, Dataset]):
        self.ns, self.datasets = ns, datasets

    def _column(self, chart: Chart, field: Field):
        return self.ns.ColumnIdentifierProperty(data_set_identifier=chart.dataset, column_name=field.column)

    def dimension(self, chart: Chart, role: str, field: Field):
        ns, kind = self.ns, column_type(chart, field, self.datasets[chart.dataset])
        common = dict(field_id=chart.field_id(role), column=self._column(chart, field))
        if kind == "DATETIME":
            return ns.DimensionFieldProperty(date_dimension_field=ns.DateDimensionFieldProperty(
                **common, date_granularity=field.granularity))
        if kind in NUMERIC:
            return ns.DimensionFieldProperty(numerical_dimension_field=ns.NumericalDimensionFieldProperty(**common))
        return ns.DimensionFieldProperty(categorical_dimension_field=ns.CategoricalDimensionFieldProperty(**common))

    def measure(self, chart: Chart, role: str, field: Field):
        ns, kind = self.ns, column_type(chart, field, self.datasets[chart.dataset])
        common = dict(field_id=chart.field_id(role), column=self._column(chart, field))
        if kind in NUMERIC:
            fmt = None
            if field.percent:
                fmt = ns.NumberFormatConfigurationProperty(format_configuration=ns.NumericFormatConfigurationProperty(
                    percentage_display_format_configuration=ns.PercentageDisplayFormatConfigurationProperty(
                        decimal_places_configuration=ns.DecimalPlacesConfigurationProperty(decimal_places=1))))
            return ns.MeasureFieldProperty(numerical_measure_field=ns.NumericalMeasureFieldProperty(
                **common, format_configuration=fmt,
                aggregation_function=ns.NumericalAggregationFunctionProperty(
                    simple_numerical_aggregation=field.aggregation)))
        if kind == "DATETIME":
            return ns.MeasureFieldProperty(date_measure_field=ns.DateMeasureFieldProperty(
                **common, aggregation_function=field.aggregation))
        return ns.MeasureFieldProperty(categorical_measure_field=ns.CategoricalMeasureFieldProperty(
            **common, aggregation_function=field.aggregation))

    def _title(self, chart: Chart):
        return self.ns.VisualTitleLabelOptionsProperty(
            visibility="VISIBLE", format_text=self.ns.ShortFormatTextProperty(plain_text=chart.title))

    def _label(self, chart: Chart, role: str, field: Field):
        ns = self.ns
        return ns.ChartAxisLabelOptionsProperty(visibility="VISIBLE", axis_label_options=[ns.AxisLabelOptionsProperty(
            custom_label=field.title,
            apply_to=ns.AxisLabelReferenceOptionsProperty(field_id=chart.field_id(role),
                                                          column=self._column(chart, field)))])

    def _sort(self, chart: Chart) -> list:
        if chart.sort is None:
            return []
        return [self.ns.FieldSortOptionsProperty(field_sort=self.ns.FieldSortProperty(
            field_id=chart.field_id(chart.role_of(chart.sort.by)), direction=chart.sort.direction))]

    def visual(self, chart: Chart):
        ns = self.ns
        category = [self.dimension(chart, "category", chart.category)]
        colors = [self.dimension(chart, "color", chart.color)] if chart.color else None
        values = [self.measure(chart, f"value{i}", v) for i, v in enumerate(chart.values)]
        if chart.kind == chart_spec.TABLE:
            return ns.VisualProperty(table_visual=ns.TableVisualProperty(
                visual_id=chart.id, title=self._title(chart),
                chart_configuration=ns.TableConfigurationProperty(
                    field_wells=ns.TableFieldWellsProperty(table_aggregated_field_wells=(
                        ns.TableAggregatedFieldWellsProperty(group_by=category, values=values))),
                    sort_configuration=ns.TableSortConfigurationProperty(row_sort=self._sort(chart)),
                    field_options=ns.TableFieldOptionsProperty(selected_field_options=[
                        ns.TableFieldOptionProperty(field_id=chart.field_id(role), custom_label=f.title)
                        for role, f in chart.fields]))))
        if chart.kind == chart_spec.LINE:
            return ns.VisualProperty(line_chart_visual=ns.LineChartVisualProperty(
                visual_id=chart.id, title=self._title(chart),
                chart_configuration=ns.LineChartConfigurationProperty(
                    type="LINE",
                    field_wells=ns.LineChartFieldWellsProperty(line_chart_aggregated_field_wells=(
                        ns.LineChartAggregatedFieldWellsProperty(category=category, values=values, colors=colors))),
                    sort_configuration=ns.LineChartSortConfigurationProperty(category_sort=self._sort(chart)),
                    x_axis_label_options=self._label(chart, "category", chart.category),
                    primary_y_axis_label_options=self._label(chart, "value0", chart.values[0]),
                    legend=ns.LegendOptionsProperty(visibility="VISIBLE", position="RIGHT"))))
        limit = (ns.ItemsLimitConfigurationProperty(items_limit=chart.color_limit, other_categories="INCLUDE")
                 if chart.color_limit else None)
        return ns.VisualProperty(bar_chart_visual=ns.BarChartVisualProperty(
            visual_id=chart.id, title=self._title(chart),
            chart_configuration=ns.BarChartConfigurationProperty(
                orientation="HORIZONTAL" if chart.horizontal else "VERTICAL",
                bars_arrangement="STACKED" if chart.kind == chart_spec.STACKED_BAR else "CLUSTERED",
                field_wells=ns.BarChartFieldWellsProperty(bar_chart_aggregated_field_wells=(
                    ns.BarChartAggregatedFieldWellsProperty(category=category, values=values, colors=colors))),
                sort_configuration=ns.BarChartSortConfigurationProperty(
                    category_sort=self._sort(chart), color_items_limit=limit),
                category_label_options=self._label(chart, "category", chart.category),
                value_label_options=self._label(chart, "value0", chart.values[0]),
                color_label_options=self._label(chart, "color", chart.color) if chart.color else None,
                legend=ns.LegendOptionsProperty(visibility="VISIBLE" if chart.color else "HIDDEN"),
                data_labels=ns.DataLabelOptionsProperty(visibility="HIDDEN" if chart.color else "VISIBLE"))))

    def sheet(self, sheet: Sheet):
        ns = self.ns
        elements = [ns.GridLayoutElementProperty(
            element_id=chart.id, element_type="VISUAL",
            column_index=(i % 2) * VISUAL_COLUMNS, column_span=VISUAL_COLUMNS,
            row_index=(i // 2) * VISUAL_ROWS, row_span=VISUAL_ROWS) for i, chart in enumerate(sheet.charts)]
        return ns.SheetDefinitionProperty(
            sheet_id=sheet.id, name=sheet.title, content_type="INTERACTIVE",
            visuals=[self.visual(c) for c in sheet.charts],
            layouts=[ns.LayoutProperty(configuration=ns.LayoutConfigurationProperty(
                grid_layout=ns.GridLayoutConfigurationProperty(elements=elements)))])

    def filter_group(self, sheet: Sheet, chart: Chart, at_least: AtLeast):
        ns = self.ns
        column_type(chart, Field(at_least.column), self.datasets[chart.dataset])
        return ns.FilterGroupProperty(
            filter_group_id=f"{chart.id}-at-least", cross_dataset="SINGLE_DATASET", status="ENABLED",
            filters=[ns.FilterProperty(numeric_range_filter=ns.NumericRangeFilterProperty(
                filter_id=f"{chart.id}-at-least-{at_least.column}",
                column=ns.ColumnIdentifierProperty(data_set_identifier=chart.dataset, column_name=at_least.column),
                null_option="NON_NULLS_ONLY", include_minimum=True,
                range_minimum=ns.NumericRangeFilterValueProperty(static_value=at_least.value)))],
            scope_configuration=ns.FilterScopeConfigurationProperty(
                selected_sheets=ns.SelectedSheetsFilterScopeConfigurationProperty(sheet_visual_scoping_configurations=[
                    ns.SheetVisualScopingConfigurationProperty(sheet_id=sheet.id, scope="SELECTED_VISUALS",
                                                               visual_ids=[chart.id])])))


def definition(ns, *, sheets: Sequence[Sheet], datasets: Mapping[str, Dataset], data_set_arns: Mapping[str, str]):
    """The ``Definition`` of an analysis (``ns=CfnAnalysis``) or a dashboard (``ns=CfnDashboard``): the sheets of
    the spec, the datasets they read declared by their key (``data_set_arns``: key -> dataset ARN)."""
    builder = _Builder(ns, datasets)
    used = sorted({c.dataset for s in sheets for c in s.charts})
    missing = [key for key in used if key not in data_set_arns or key not in datasets]
    if missing:
        raise DefinitionError(f"charts read dataset(s) {', '.join(missing)}, which the stack does not define")
    from aws_cdk import aws_quicksight as quicksight

    root = ns.AnalysisDefinitionProperty if ns is quicksight.CfnAnalysis else ns.DashboardVersionDefinitionProperty
    return root(
        data_set_identifier_declarations=[ns.DataSetIdentifierDeclarationProperty(
            identifier=key, data_set_arn=data_set_arns[key]) for key in used],
        sheets=[builder.sheet(s) for s in sheets],
        filter_groups=[builder.filter_group(s, c, c.at_least) for s in sheets for c in s.charts if c.at_least]
        or None)
