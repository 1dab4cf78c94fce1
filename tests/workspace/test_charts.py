"""The usage charts drawn by the server: every month of the period (gaps at zero), bars in
proportion, figures as French readers write them, and a description for screen readers."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from plume.usage.schemas import UsageRow
from plume.workspace.charts import BAR_SPACE, bar_chart, every_month, figure, row_label


def row(key: str, requests: int, cost: str = "0") -> UsageRow:
    return UsageRow(
        key=key,
        requests=requests,
        prompt_tokens=requests * 100,
        completion_tokens=requests * 50,
        cost_eur=Decimal(cost),
        energy_kwh=None,
        gwp_kgco2eq=None,
        requests_without_impact=requests,
    )


def test_every_month_of_the_period_is_charted_across_a_new_year() -> None:
    months = every_month([row("2026-01", 4)], date(2025, 11, 3), date(2026, 2, 1))
    assert [m.key for m in months] == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert [m.requests for m in months] == [0, 0, 4, 0]


def test_bars_are_in_proportion_and_described() -> None:
    chart = bar_chart(
        "Requêtes par mois", [row("2026-03", 10), row("2026-04", 5)], "month", "requests"
    )
    assert [bar.width for bar in chart.bars] == [BAR_SPACE, BAR_SPACE // 2]
    assert chart.description == "mars 2026 : 10 ; avr. 2026 : 5"
    assert not chart.empty
    tokens = bar_chart("Jetons", [row("arrete", 2)], "kind", "tokens")
    assert tokens.bars[0].label == "Arrêté"
    assert tokens.bars[0].text == "300"
    nothing = bar_chart("Requêtes", [row("2026-03", 0)], "month", "requests")
    assert nothing.empty


def test_figures_are_written_the_french_way() -> None:
    assert figure(1234567, "requests") == "1\u202f234\u202f567"
    assert figure(Decimal("1234.5"), "cost_eur") == "1\u202f234,50 €"
    assert figure(0.0421, "energy_kwh") == "0,042 kWh"
    assert figure(None, "gwp_kgco2eq") == "—"
    assert row_label("2026-08", "month") == "août 2026"
    assert row_label("chat", "kind") == "Conversation"
