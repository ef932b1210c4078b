"""A campaign's results over time: one sparkline a line, hour by hour (last 48 hours)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from phigate.admin.campaign_results import (
    CampaignResults,
    cumulative_complaint_rate,
    filled_hours,
)

#: (name, label): the sparklines, top to bottom.
SERIES = (("delivered", "delivered/h"), ("bounced", "bounced/h"),
          ("complaint_rate", "complaint rate"), ("opens", "opens/h (est.)"))


class CampaignSeries(Vertical):
    def compose(self) -> ComposeResult:
        for name, label in SERIES:
            with Horizontal(classes="series"):
                yield Static(label, id=f"cs-label-{name}", classes="series-label",
                             markup=False)
                yield Sparkline([0.0], id=f"cs-{name}", classes=name)

    def show(self, results: CampaignResults | None) -> None:
        hours = filled_hours(results.series) if results else []
        points = {
            "delivered": [float(h.delivered) for h in hours],
            "bounced": [float(h.bounced) for h in hours],
            "complaint_rate": cumulative_complaint_rate(hours),
            "opens": [float(h.opens) for h in hours],
        }
        totals = {
            "delivered": str(sum(h.delivered for h in hours)),
            "bounced": str(sum(h.bounced for h in hours)),
            "complaint_rate": f"{results.complaint_rate.value:.2%}" if results else "-",
            "opens": str(results.opens["unique_opens"]) if results and results.opens
            else "off",
        }
        for name, label in SERIES:
            self.query_one(f"#cs-{name}", Sparkline).data = points[name] or [0.0]
            self.query_one(f"#cs-label-{name}", Static).update(
                f"{label:<15}{totals[name]:>7}")
