"""The dashboard's charts, described once: the CDK dashboard stack builds the QuickSight visuals from these
(``infra.constructs.quicksight_definition``) and ``functions.analytics.charts`` draws the local PNG preview from them,
so the two cannot drift apart (tests/test_dashboard_definition.py holds them together).

A chart reads one dataset of ``functions.analytics.datasets`` (by its ``key``) and names that dataset's columns:

- ``category``: the x axis of a line, the bars of a bar chart, the group-by column of a table; a DATETIME column
  needs a ``granularity`` (QuickSight's DateDimensionField);
- ``values``: the measures, each with an aggregation that fits the column's type (``AGGREGATIONS``);
- ``color``: one line / bar segment per value of this column (line, stacked and clustered bars);
- ``sort``: the field (the category or one of the values) and direction the chart is ordered by;
- ``color_limit``: bars show this many colours by size, the rest as one "Other" segment (QuickSight
  ``ColorItemsLimit`` with ``OtherCategories: INCLUDE``);
- ``at_least``: rows kept only where ``column >= value`` before aggregating (a QuickSight numeric range filter on
  this visual; the preview applies the same ``WHERE``).

Pure data, no third-party imports: the CDK app imports it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

BAR, CLUSTERED_BAR, STACKED_BAR, LINE, TABLE = "bar", "clustered_bar", "stacked_bar", "line", "table"
KINDS = (BAR, CLUSTERED_BAR, STACKED_BAR, LINE, TABLE)
ASCENDING, DESCENDING = "ASC", "DESC"

# QuickSight column type -> aggregations a measure of that type can take (API AggregationFunction: categorical
# COUNT/DISTINCT_COUNT, date COUNT/DISTINCT_COUNT/MIN/MAX, numerical SimpleNumericalAggregation).
AGGREGATIONS = {
    "STRING": ("COUNT", "DISTINCT_COUNT"),
    "BOOLEAN": ("COUNT", "DISTINCT_COUNT"),
    "DATETIME": ("COUNT", "DISTINCT_COUNT", "MIN", "MAX"),
    "INTEGER": ("SUM", "AVERAGE", "MIN", "MAX", "COUNT", "DISTINCT_COUNT"),
    "DECIMAL": ("SUM", "AVERAGE", "MIN", "MAX", "COUNT", "DISTINCT_COUNT"),
}
ADDITIVE = ("COUNT", "SUM")
GRANULARITIES = ("YEAR", "QUARTER", "MONTH", "WEEK", "DAY", "HOUR", "MINUTE", "SECOND")


class ChartSpecError(ValueError):
    """A chart that cannot be built; the message names the chart and the problem."""


@dataclass(frozen=True)
class Field:
    column: str
    aggregation: str | None = None   # measures only
    granularity: str | None = None   # a DATETIME category only
    label: str | None = None         # axis / column header; default: the column name
    percent: bool = False               # show a 0..1 measure as a percentage

    @property
    def title(self) -> str:
        return self.label or self.column


@dataclass(frozen=True)
class Sort:
    by: Field                            # the category or one of the values (the same Field object)
    direction: str = DESCENDING


@dataclass(frozen=True)
class AtLeast:
    column: str
    value: float


@dataclass(frozen=True)
class Chart:
    id: str                              # visual id in QuickSight, file stem of the preview PNG
    title: str
    dataset: str                         # functions.analytics.datasets.Dataset.key
    kind: str
    category: Field
    values: tuple[Field, ...]
    color: Field | None = None
    sort: Sort | None = None
    horizontal: bool = False             # bars run left to right (categories on the y axis)
    color_limit: int | None = None
    at_least: AtLeast | None = None

    def __post_init__(self):
        where = f"chart {self.id!r}"
        if self.kind not in KINDS:
            raise ChartSpecError(f"{where}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not self.values or any(v.aggregation is None for v in self.values):
            raise ChartSpecError(f"{where}: every value needs an aggregation")
        if self.category.aggregation or (self.color and self.color.aggregation):
            raise ChartSpecError(f"{where}: the category and colour are dimensions, not aggregated")
        if self.kind in (CLUSTERED_BAR, STACKED_BAR) and self.color is None:
            raise ChartSpecError(f"{where}: a {self.kind} needs a colour field")
        if self.kind in (BAR, TABLE) and self.color is not None:
            raise ChartSpecError(f"{where}: a {self.kind} has no colour field")
        if self.kind != TABLE and len(self.values) != 1:
            raise ChartSpecError(f"{where}: a {self.kind} shows one value")
        if self.sort and self.sort.by not in (self.category, *self.values):
            raise ChartSpecError(f"{where}: sorted by {self.sort.by}, which is neither its category nor a value")
        if self.color_limit is not None and (self.color is None or self.kind == LINE
                                             or self.values[0].aggregation not in ADDITIVE):
            raise ChartSpecError(f"{where}: color_limit is for bars with a colour field and an additive value "
                                 f"({', '.join(ADDITIVE)}: the 'Other' segment is the sum of the rest)")

    @property
    def fields(self) -> tuple[tuple[str, Field], ...]:
        """(role, field) in well order: ("category", ..), ("color", ..), ("value0", ..), ...."""
        roles = [("category", self.category)]
        if self.color:
            roles.append(("color", self.color))
        roles += [(f"value{i}", v) for i, v in enumerate(self.values)]
        return tuple(roles)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.column for _, f in self.fields)

    def field_id(self, role: str) -> str:
        """QuickSight FieldId of a well (unique in the analysis: chart ids are unique)."""
        return f"{self.id}-{role}"

    def role_of(self, wanted: Field) -> str:
        """The role of ``wanted`` (a field of this chart)."""
        return next(role for role, f in self.fields if f == wanted)


@dataclass(frozen=True)
class Sheet:
    id: str
    title: str
    charts: tuple[Chart, ...] = field(default_factory=tuple)


def silent_minutes_default() -> int:
    """The named query ``silent_devices``'s default threshold (the same as the ``silent_device_minutes`` setting's
    default, tests/test_dashboard_definition.py): what the local preview uses when not given one. The deployed
    dashboard is given the setting itself (``infra/stacks/dashboard_stack.py``), so it calls the devices silent that
    the alerts do."""
    from functions.analytics import queries

    query = next(q for q in queries.load(queries.QUERIES_DIR) if q.name == "silent_devices")
    return int(query.params["silent_minutes"])


def sheets(silent_minutes: int | None = None) -> tuple[Sheet, ...]:
    """The analysis and the dashboard, sheet by sheet; the preview draws every chart. ``silent_minutes``: the
    silent table's cut-off (the deployment's ``silent_device_minutes``; default ``silent_minutes_default()``)."""
    installations = Field("city", aggregation="COUNT", label="installations")
    wifi = Sheet("free-wifi", "Free public Wi-Fi (seed charts)", (
        Chart(id="wifi-count-by-city", title="시도별 와이파이 설치 (free public Wi-Fi per province/city)",
              dataset="free-wifi", kind=BAR, category=Field("city", label="province/city"),
              values=(installations,), sort=Sort(installations, DESCENDING), horizontal=True),
        Chart(id="wifi-count-by-service-provider",
              title="시도별 와이파이 서비스 제공업체 (installations per city by service provider)",
              dataset="free-wifi", kind=STACKED_BAR, category=Field("city", label="province/city"),
              values=(installations,), color=Field("service_provider", label="service provider"),
              sort=Sort(installations, DESCENDING), color_limit=6),
    ))
    hour = Field("hour", granularity="HOUR", label="hour (UTC)")
    silent = Field("minutes_silent", aggregation="MAX", label="minutes silent")
    threshold = silent_minutes_default() if silent_minutes is None else silent_minutes
    cameras = Sheet("cameras", "Cameras: mask compliance and silent devices", (
        Chart(id="mask-compliance-by-device-hour", title="Mask compliance per device and hour (UTC)",
              dataset="mask-compliance-hourly", kind=LINE,
              category=hour,
              values=(Field("compliance_rate", aggregation="AVERAGE", label="faces with a mask", percent=True),),
              color=Field("device_id", label="device"), sort=Sort(hour, ASCENDING)),
        Chart(id="silent-devices", title=f"Silent devices (nothing received for {threshold}+ minutes)",
              dataset="device-silence", kind=TABLE, category=Field("device_id", label="device"),
              values=(Field("last_seen", aggregation="MAX", label="last seen (UTC)"), silent),
              sort=Sort(silent, DESCENDING), at_least=AtLeast("minutes_silent", threshold)),
    ))
    return (wifi, cameras)


def charts(silent_minutes: int | None = None) -> tuple[Chart, ...]:
    return tuple(c for s in sheets(silent_minutes) for c in s.charts)
