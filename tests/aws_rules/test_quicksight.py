"""QuickSight's own rules for the analysis and dashboard definitions, which cfn-lint (CloudFormation's schema) does
not check. Each rule runs on the synthesized dashboard stack and is shown failing on a definition with the defect.

Sources, QuickSight API reference (https://docs.aws.amazon.com/quicksight/latest/APIReference/<page>):

- The API model: member names, required members, enums, string lengths, list sizes (e.g. ``SheetDefinition.Visuals``
  at most 75 per sheet, API_SheetDefinition.html), checked against botocore's copy of the service model (what every
  SDK call is validated against). Union structures ("This is a union type structure. For this structure to be
  valid, only one of the attributes can be defined", e.g. API_Visual.html, API_AggregationFunction.html) hold
  exactly one member; DimensionField and MeasureField are used the same way (one field per well entry).
- Identifiers: SheetId, VisualId, FilterGroupId, FilterId and grid ElementId match ``^[\\w\\-]+$`` with 1-512
  characters (API_SheetDefinition.html; the CloudFormation schema anchors the pattern,
  AWSCloudFormation/latest/TemplateReference/aws-properties-quicksight-analysis-sheet.html). Sheet and visual ids
  are unique in a definition: filter scopes, layouts and actions address them by id. FieldId ("the custom field
  ID", API_CategoricalDimensionField.html) is what sorts, labels and field options refer to, so it is unique in a
  definition too (a repeated id makes those references ambiguous; not a sentence the docs spell out).
- Datasets: "DataSetIdentifierDeclarations ... allows the usage of dataset identifiers instead of dataset ARNs
  throughout analysis sub-structures" (API_AnalysisDefinition.html); every ``ColumnIdentifier.DataSetIdentifier``
  must be declared (else DATA_SET_NOT_FOUND, API_AnalysisError.html), and each declaration must point at a dataset.
- Column types: CategoricalDimensionField/CategoricalMeasureField are for "categorical type columns",
  NumericalDimensionField/NumericalMeasureField for "numerical type columns", DateDimensionField/DateMeasureField for
  "date type columns" (API_CategoricalMeasureField.html, API_NumericalMeasureField.html, API_DateDimensionField.html);
  a mismatch is COLUMN_TYPE_MISMATCH (API_AnalysisError.html). The column must exist in the dataset. A date dimension
  names its DateGranularity (the API allows omitting it; we never leave the bucket size to QuickSight's default).
- Layout: a grid element has ColumnSpan 1-36 and ColumnIndex 0-35 (API_GridLayoutElement.html), so it must end in
  column 36 or before; every visual of a sheet is placed by exactly one element, and every element names a visual of
  that sheet. Filter scopes name sheets and visuals of the definition that read the filter's dataset.
"""
from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from collections.abc import Iterator

import pytest

from tests.aws_rules.support import resources
from tests.conftest import QUICKSIGHT_PRINCIPAL

STACK = "maskcam-dashboard"
KINDS = ("AWS::QuickSight::Analysis", "AWS::QuickSight::Dashboard")
ROOT_SHAPES = {"AWS::QuickSight::Analysis": "AnalysisDefinition",
               "AWS::QuickSight::Dashboard": "DashboardVersionDefinition"}
ID_RE = re.compile(r"^[\w\-]{1,512}$")
UNIONS_BY_USE = {"DimensionField", "MeasureField", "NumericalAggregationFunction"}
FIELD_COLUMN_TYPES = {
    "CategoricalDimensionField": ("STRING",), "CategoricalMeasureField": ("STRING",),
    "NumericalDimensionField": ("INTEGER", "DECIMAL"), "NumericalMeasureField": ("INTEGER", "DECIMAL"),
    "DateDimensionField": ("DATETIME",), "DateMeasureField": ("DATETIME",),
    "NumericRangeFilter": ("INTEGER", "DECIMAL"), "NumericEqualityFilter": ("INTEGER", "DECIMAL"),
    "CategoryFilter": ("STRING",), "TimeRangeFilter": ("DATETIME",), "RelativeDatesFilter": ("DATETIME",),
}
GRID_COLUMNS = 36


@pytest.fixture(scope="module")
def template(full_project) -> dict:
    return full_project.templates[STACK]


def definitions(template: dict) -> list[tuple[str, str, dict]]:
    """(logical id, type, Definition) of the analysis and the dashboard."""
    return [(lid, kind, r["Properties"]["Definition"]) for kind in KINDS for lid, r in resources(template, kind)]


def walk(value, path: str = "") -> Iterator[tuple[str, str, object]]:
    """(path, key, value) of every dict entry under ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key, item
            yield from walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from walk(item, f"{path}[{i}]")


def _intrinsic(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref"))


# -- rule: the API model -----------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _model():
    import botocore.session

    session = botocore.session.get_session()
    raw = session.get_component("data_loader").load_service_model("quicksight", "service-2")
    unions = {name for name, shape in raw["shapes"].items()
              if "union type structure" in shape.get("documentation", "")} | UNIONS_BY_USE
    return session.get_service_model("quicksight"), unions


def conform(value, shape, path: str, problems: list) -> None:
    """Appends to ``problems`` where ``value`` breaks ``shape`` (botocore shape) of the QuickSight API model."""
    _, unions = _model()
    meta = shape.metadata
    if _intrinsic(value):
        return
    if shape.type_name == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: {shape.name} must be an object")
            return
        for key in value:
            if key not in shape.members:
                problems.append(f"{path}: {shape.name} has no member {key!r}")
        for key in shape.required_members:
            if key not in value:
                problems.append(f"{path}: {shape.name} needs {key}")
        if shape.name in unions and len(value) != 1:
            problems.append(f"{path}: {shape.name} is a union and holds {len(value)} members ({', '.join(value)})")
        for key, item in value.items():
            if key in shape.members:
                conform(item, shape.members[key], f"{path}.{key}", problems)
    elif shape.type_name == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: must be a list")
            return
        if not meta.get("min", 0) <= len(value) <= meta.get("max", len(value)):
            problems.append(f"{path}: {len(value)} items, allowed {meta.get('min', 0)}-{meta.get('max')}")
        for i, item in enumerate(value):
            conform(item, shape.member, f"{path}[{i}]", problems)
    elif shape.type_name == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: must be a string")
            return
        if "enum" in meta and value not in meta["enum"]:
            problems.append(f"{path}: {value!r} is not one of {', '.join(meta['enum'])}")
        if not meta.get("min", 0) <= len(value) <= meta.get("max", len(value)):
            problems.append(f"{path}: {len(value)} characters, allowed {meta.get('min', 0)}-{meta.get('max')}")
        if "pattern" in meta and re.search(meta["pattern"], value) is None:
            problems.append(f"{path}: {value!r} does not match {meta['pattern']}")
    elif shape.type_name in ("integer", "long", "double", "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{path}: must be a number")
        elif not meta.get("min", value) <= value <= meta.get("max", value):
            problems.append(f"{path}: {value} outside {meta.get('min')}-{meta.get('max')}")
    elif shape.type_name == "boolean" and not isinstance(value, bool):
        problems.append(f"{path}: must be true or false")


def model_problems(template: dict) -> list:
    model, _ = _model()
    problems = []
    for lid, kind, definition in definitions(template):
        conform(definition, model.shape_for(ROOT_SHAPES[kind]), lid, problems)
    return problems


# -- rule: identifiers ---------------------------------------------------------------------------------------------
ID_KEYS = ("SheetId", "VisualId", "FilterGroupId", "FilterId", "ElementId")


FIELD_TYPES = tuple(k for k in FIELD_COLUMN_TYPES if k.endswith("Field"))


def id_problems(template: dict) -> list:
    problems = []
    for lid, _, definition in definitions(template):
        for path, key, value in walk(definition):
            if key in ID_KEYS and not (isinstance(value, str) and ID_RE.match(value)):
                problems.append(f"{lid}{path}.{key}: {value!r} is not 1-512 of [A-Za-z0-9_-]")
        sheets = definition.get("Sheets", [])
        groups = definition.get("FilterGroups", [])
        used = {
            "SheetId": [s["SheetId"] for s in sheets],
            "VisualId": [v for s in sheets for v in _visual_ids(s)],
            "FieldId": [value["FieldId"] for _, key, value in walk(definition)
                        if key in FIELD_TYPES and isinstance(value, dict)],
            "FilterGroupId": [g["FilterGroupId"] for g in groups],
            "FilterId": [next(iter(f.values()))["FilterId"] for g in groups for f in g["Filters"]],
        }
        for key, values in used.items():
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                problems.append(f"{lid}: {key} used more than once: {', '.join(dupes)}")
    return problems


# -- rule: datasets and column types -------------------------------------------------------------------------------
def dataset_columns(template: dict) -> dict:
    """Logical id of each AWS::QuickSight::DataSet -> {column: QuickSight type}, from its physical table."""
    out = {}
    for lid, resource in resources(template, "AWS::QuickSight::DataSet"):
        columns = {}
        for table in resource["Properties"]["PhysicalTableMap"].values():
            source = table.get("RelationalTable", {}).get("InputColumns") or table.get("CustomSql", {}).get("Columns")
            columns.update({c["Name"]: c["Type"] for c in source or []})
        out[lid] = columns
    return out


def declared(definition: dict, template: dict) -> dict:
    """Dataset identifier -> {column: type} of the dataset its declaration points at (None: not a dataset of the
    stack)."""
    columns = dataset_columns(template)
    out = {}
    for declaration in definition["DataSetIdentifierDeclarations"]:
        arn = declaration["DataSetArn"]
        target = arn.get("Fn::GetAtt", [None])[0] if isinstance(arn, dict) else None
        out[declaration["Identifier"]] = columns.get(target)
    return out


def dataset_problems(template: dict) -> list:
    problems = []
    for lid, _, definition in definitions(template):
        identifiers = [d["Identifier"] for d in definition["DataSetIdentifierDeclarations"]]
        if len(set(identifiers)) != len(identifiers):
            problems.append(f"{lid}: a dataset identifier is declared twice: {identifiers}")
        known = declared(definition, template)
        for identifier, columns in known.items():
            if columns is None:
                problems.append(f"{lid}: dataset identifier {identifier} does not point at a dataset of the stack")
        used = set()
        for path, key, value in walk(definition):
            if key in FIELD_COLUMN_TYPES and isinstance(value, dict) and "Column" in value:
                column = value["Column"]
                ident, name = column.get("DataSetIdentifier"), column["ColumnName"]
                used.add(ident)
                if ident not in known:
                    problems.append(f"{lid}{path}.{key}: dataset identifier {ident!r} is not declared")
                    continue
                types = known[ident] or {}
                if name not in types:
                    problems.append(f"{lid}{path}.{key}: dataset {ident} has no column {name!r}")
                elif types[name] not in FIELD_COLUMN_TYPES[key]:
                    problems.append(f"{lid}{path}.{key}: column {ident}.{name} is {types[name]}; a {key} needs "
                                    f"{' or '.join(FIELD_COLUMN_TYPES[key])}")
                if key == "DateDimensionField" and not value.get("DateGranularity"):
                    problems.append(f"{lid}{path}.{key}: date dimension {name} has no DateGranularity")
        unused = sorted(set(known) - used)
        if unused:
            problems.append(f"{lid}: datasets declared but never used: {', '.join(unused)}")
    return problems


# -- rule: layout and filter scopes --------------------------------------------------------------------------------
def _visual_ids(sheet: dict) -> list[str]:
    return [next(iter(v.values()))["VisualId"] for v in sheet.get("Visuals", [])]


def _visual_datasets(sheet: dict) -> dict:
    return {next(iter(v.values()))["VisualId"]: {value["DataSetIdentifier"] for _, key, value in walk(v)
                                                 if key == "Column" and isinstance(value, dict)}
            for v in sheet.get("Visuals", [])}


def layout_problems(template: dict) -> list:
    problems = []
    for lid, _, definition in definitions(template):
        sheets = {s["SheetId"]: s for s in definition.get("Sheets", [])}
        for sheet_id, sheet in sheets.items():
            visuals = _visual_ids(sheet)
            placed = [e for layout in sheet.get("Layouts", [])
                      for e in layout["Configuration"].get("GridLayout", {}).get("Elements", [])]
            for element in placed:
                if element["ElementType"] == "VISUAL" and element["ElementId"] not in visuals:
                    problems.append(f"{lid}/{sheet_id}: layout element {element['ElementId']} is no visual of the "
                                    "sheet")
                if element.get("ColumnIndex", 0) + element["ColumnSpan"] > GRID_COLUMNS:
                    problems.append(f"{lid}/{sheet_id}: element {element['ElementId']} ends past column {GRID_COLUMNS}")
            ids = [e["ElementId"] for e in placed if e["ElementType"] == "VISUAL"]
            for visual in visuals:
                if ids.count(visual) != 1:
                    problems.append(f"{lid}/{sheet_id}: visual {visual} is placed {ids.count(visual)} times")
        for group in definition.get("FilterGroups", []):
            filter_datasets = {value["DataSetIdentifier"] for _, key, value in walk(group["Filters"])
                               if key == "Column"}
            scopes = group["ScopeConfiguration"].get("SelectedSheets", {}).get("SheetVisualScopingConfigurations", [])
            for scope in scopes:
                sheet = sheets.get(scope["SheetId"])
                if sheet is None:
                    problems.append(f"{lid}: filter group {group['FilterGroupId']} scopes unknown sheet "
                                    f"{scope['SheetId']}")
                    continue
                reads = _visual_datasets(sheet)
                for visual in scope.get("VisualIds", []):
                    if visual not in reads:
                        problems.append(f"{lid}: filter group {group['FilterGroupId']} scopes unknown visual {visual}")
                    elif group["CrossDataset"] == "SINGLE_DATASET" and not filter_datasets <= reads[visual]:
                        problems.append(f"{lid}: filter group {group['FilterGroupId']} filters "
                                        f"{sorted(filter_datasets)}, which visual {visual} does not read")
    return problems


RULES = (model_problems, id_problems, dataset_problems, layout_problems)


# -- the synthesized stack passes ----------------------------------------------------------------------------------
def test_the_synthesized_analysis_and_dashboard_pass_every_rule(template):
    assert len(definitions(template)) == 2
    for rule in RULES:
        assert rule(template) == [], rule.__name__


# -- each rule bites -----------------------------------------------------------------------------------------------
def _broken(template, change) -> dict:
    bad = copy.deepcopy(template)
    for _, _, definition in definitions(bad):
        change(definition)
    return bad


def _first_visual(definition, kind="BarChartVisual") -> dict:
    return next(v[kind] for s in definition["Sheets"] for v in s["Visuals"] if kind in v)


def test_model_rule_fails_on_an_unknown_member_a_bad_enum_a_two_member_union_and_too_many_visuals(template):
    def change(d):
        bar = _first_visual(d)
        bar["ChartConfiguration"]["Orientation"] = "DIAGONAL"
        bar["ChartConfiguration"]["Colour"] = "red"
        measure = bar["ChartConfiguration"]["FieldWells"]["BarChartAggregatedFieldWells"]["Values"][0]
        measure["NumericalMeasureField"] = {"FieldId": "x", "Column": {"ColumnName": "city"}}
        sheet = d["Sheets"][0]
        sheet["Visuals"] = sheet["Visuals"] * 40
    problems = "\n".join(model_problems(_broken(template, change)))
    assert "'DIAGONAL' is not one of HORIZONTAL, VERTICAL" in problems
    assert "has no member 'Colour'" in problems
    assert "MeasureField is a union and holds 2 members" in problems
    assert ".Sheets[0].Visuals: 80 items, allowed 0-75" in problems


def test_id_rule_fails_on_a_dotted_sheet_id_and_a_repeated_visual_and_field_id(template):
    def change(d):
        d["Sheets"][0]["SheetId"] = "free.wifi"
        first, second = [next(iter(v.values())) for v in d["Sheets"][0]["Visuals"][:2]]
        second["VisualId"] = first["VisualId"]
        wells = second["ChartConfiguration"]["FieldWells"]["BarChartAggregatedFieldWells"]
        first_wells = first["ChartConfiguration"]["FieldWells"]["BarChartAggregatedFieldWells"]
        wells["Category"][0]["CategoricalDimensionField"]["FieldId"] = \
            first_wells["Category"][0]["CategoricalDimensionField"]["FieldId"]
    problems = "\n".join(id_problems(_broken(template, change)))
    assert "'free.wifi' is not 1-512 of [A-Za-z0-9_-]" in problems
    assert "VisualId used more than once: wifi-count-by-city" in problems
    assert "FieldId used more than once: wifi-count-by-city-category" in problems


def test_dataset_rule_fails_on_an_undeclared_dataset_a_missing_column_a_type_mismatch_and_no_granularity(template):
    def change(d):
        bar = _first_visual(d)
        wells = bar["ChartConfiguration"]["FieldWells"]["BarChartAggregatedFieldWells"]
        wells["Category"][0]["CategoricalDimensionField"]["Column"]["ColumnName"] = "province"
        wells["Values"][0] = {"NumericalMeasureField": {
            "FieldId": "wifi-count-by-city-value0", "Column": {"DataSetIdentifier": "free-wifi", "ColumnName": "city"},
            "AggregationFunction": {"SimpleNumericalAggregation": "SUM"}}}
        line = _first_visual(d, "LineChartVisual")
        date = line["ChartConfiguration"]["FieldWells"]["LineChartAggregatedFieldWells"]["Category"][0]
        del date["DateDimensionField"]["DateGranularity"]
        table = _first_visual(d, "TableVisual")
        group_by = table["ChartConfiguration"]["FieldWells"]["TableAggregatedFieldWells"]["GroupBy"][0]
        group_by["CategoricalDimensionField"]["Column"]["DataSetIdentifier"] = "devices"
    problems = "\n".join(dataset_problems(_broken(template, change)))
    assert "dataset free-wifi has no column 'province'" in problems
    assert "column free-wifi.city is STRING; a NumericalMeasureField needs INTEGER or DECIMAL" in problems
    assert "date dimension hour has no DateGranularity" in problems
    assert "dataset identifier 'devices' is not declared" in problems


def test_dataset_rule_fails_on_a_declaration_that_points_nowhere_or_is_unused(template):
    def change(d):
        d["DataSetIdentifierDeclarations"].append({"Identifier": "spare", "DataSetArn": "arn:aws:quicksight:x"})
    problems = "\n".join(dataset_problems(_broken(template, change)))
    assert "dataset identifier spare does not point at a dataset of the stack" in problems
    assert "datasets declared but never used: spare" in problems


def test_layout_rule_fails_on_an_unplaced_visual_a_stray_element_and_a_grid_overflow_and_bad_filter_scope(template):
    def change(d):
        elements = d["Sheets"][0]["Layouts"][0]["Configuration"]["GridLayout"]["Elements"]
        elements[0]["ElementId"] = "ghost"
        elements[1]["ColumnIndex"] = 30
        d["FilterGroups"][0]["ScopeConfiguration"]["SelectedSheets"]["SheetVisualScopingConfigurations"][0][
            "VisualIds"] = ["mask-compliance-by-device-hour"]
    problems = "\n".join(layout_problems(_broken(template, change)))
    assert "layout element ghost is no visual of the sheet" in problems
    assert "visual wifi-count-by-city is placed 0 times" in problems
    assert "element wifi-count-by-service-provider ends past column 36" in problems
    assert "filters ['device-silence'], which visual mask-compliance-by-device-hour does not read" in problems


def test_the_principal_is_the_configured_one_on_both(template):
    for kind in KINDS:
        (_, resource), = resources(template, kind)
        assert [p["Principal"] for p in resource["Properties"]["Permissions"]] == [QUICKSIGHT_PRINCIPAL]
        assert resource["Properties"]["ValidationStrategy"] == {"Mode": "STRICT"}
    assert json.dumps(template).count("quicksight:UpdateDashboardPermissions") == 0
