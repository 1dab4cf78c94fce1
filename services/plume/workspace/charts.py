"""Usage as bar charts drawn by the server (SVG, no script, no style attribute): one bar per
month or per kind of document, for one measure. The page's table beside each chart is its
text alternative; the chart's own title and description repeat the figures for screen
readers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from plume.usage.schemas import UsageRow

MONTHS = (
    "janv.",
    "févr.",
    "mars",
    "avr.",
    "mai",
    "juin",
    "juil.",
    "août",
    "sept.",
    "oct.",
    "nov.",
    "déc.",
)
KIND_LABELS = {
    "arrete": "Arrêté",
    "deliberation": "Délibération",
    "courrier": "Courrier",
    "bulletin_article": "Article de bulletin",
    "synthese": "Synthèse",
    "chat": "Conversation",
}
# The measures people choose from: (key, label, unit).
MEASURES: dict[str, tuple[str, str]] = {
    "requests": ("Requêtes", ""),
    "tokens": ("Jetons", ""),
    "cost_eur": ("Coût", "€"),
    "energy_kwh": ("Énergie", "kWh"),
    "gwp_kgco2eq": ("Émissions", "kgCO2eq"),
}

LABEL_WIDTH = 150
BAR_SPACE = 330
VALUE_WIDTH = 120
ROW_HEIGHT = 28
BAR_HEIGHT = 18


@dataclass(frozen=True)
class Bar:
    label: str
    text: str  # the value as French readers write it
    y: int
    width: int


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    width: int
    height: int
    label_width: int
    value_x: int

    @property
    def empty(self) -> bool:
        return all(bar.width == 0 for bar in self.bars)

    @property
    def description(self) -> str:
        return " ; ".join(f"{bar.label} : {bar.text}" for bar in self.bars) or "Aucune donnée."


def measure_of(row: UsageRow, measure: str) -> float:
    if measure == "tokens":
        return float(row.prompt_tokens + row.completion_tokens)
    value = getattr(row, measure)
    return float(value) if value is not None else 0.0


def figure(value: float | Decimal | int | None, measure: str) -> str:
    """A figure in French: « 1 234 », « 12,50 € », « 0,042 kWh »."""
    if value is None:
        return "—"
    if measure in ("requests", "tokens", "prompt_tokens", "completion_tokens"):
        return f"{int(value):,}".replace(",", "\u202f")
    if measure == "cost_eur":
        return f"{float(value):,.2f} €".replace(",", "\u202f").replace(".", ",")
    unit = MEASURES[measure][1]
    return f"{float(value):,.3f} {unit}".replace(",", "\u202f").replace(".", ",")


def row_label(key: str, group_by: str) -> str:
    """« mars 2026 » for a month (YYYY-MM…), the kind's French name for a kind."""
    if group_by == "month" and len(key) >= 7 and key[:4].isdigit() and key[5:7].isdigit():
        return f"{MONTHS[int(key[5:7]) - 1]} {key[:4]}"
    if group_by == "kind":
        return KIND_LABELS.get(key, key)
    return key


def bar_chart(title: str, rows: list[UsageRow], group_by: str, measure: str) -> Chart:
    """One horizontal bar per row, the longest for the largest value."""
    values = [measure_of(row, measure) for row in rows]
    top = max(values, default=0.0)
    bars = [
        Bar(
            label=row_label(row.key, group_by),
            text=figure(value, measure),
            y=index * ROW_HEIGHT,
            width=round(BAR_SPACE * value / top) if top > 0 else 0,
        )
        for index, (row, value) in enumerate(zip(rows, values, strict=True))
    ]
    return Chart(
        title=title,
        bars=bars,
        width=LABEL_WIDTH + BAR_SPACE + VALUE_WIDTH,
        height=max(1, len(bars)) * ROW_HEIGHT,
        label_width=LABEL_WIDTH,
        value_x=LABEL_WIDTH + 8,
    )


def every_month(rows: list[UsageRow], first: date, last: date) -> list[UsageRow]:
    """The months from `first` to `last`, those without usage at zero: the chart by month
    shows the gaps too."""
    found = {row.key: row for row in rows}
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        key = f"{year:04d}-{month:02d}"
        months.append(found.get(key) or _empty(key))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _empty(key: str) -> UsageRow:
    return UsageRow(
        key=key,
        requests=0,
        prompt_tokens=0,
        completion_tokens=0,
        cost_eur=Decimal(0),
        energy_kwh=None,
        gwp_kgco2eq=None,
        requests_without_impact=0,
    )
