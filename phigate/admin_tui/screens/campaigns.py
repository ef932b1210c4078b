"""Marketing campaigns: awaiting approval, paused, approved; approve (who, from where and when
are recorded by the service) or pause with a reason; per-campaign counters and complaint rate,
and the selected campaign's results: bounce reasons, rates against the 0.10%/0.30% lines, the
estimated opens, and sparklines of the hourly series."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from phigate.admin.campaign_results import CampaignResults
from phigate.admin_tui.screens.policy_screen import PolicyScreen
from phigate.admin_tui.widgets.campaign_series import CampaignSeries
from phigate.admin_tui.widgets.dialogs import ConfirmDialog, ReasonDialog
from phigate.admin_tui.widgets.format import clip
from phigate.policy.campaigns import CampaignView

COLUMNS = ("Campaign", "State", "Wait", "Acc", "Dlv", "Def", "Bnc", "Cmpl", "Unsub", "Rate")
#: The store's state names, as the table shows them (pending mail waits for approval).
STATE_LABELS = {"pending": ("awaiting", "bold yellow"), "approved": ("approved", "green"),
                "paused": ("paused", "bold red")}


class CampaignsScreen(PolicyScreen):
    REFRESH_SECONDS = 5.0
    BINDINGS = [
        Binding("a", "approve", "Approve"),
        Binding("z", "pause", "Pause"),
        Binding("g", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.views: list[CampaignView] = []

    def compose(self) -> ComposeResult:
        header, footer = self.chrome()
        yield header
        table: DataTable[Text] = DataTable(id="campaign-table", cursor_type="row",
                                           zebra_stripes=True)
        yield table
        with Vertical(id="campaign-box", classes="panel"):
            yield Static("", id="campaign-detail", markup=False)
            yield CampaignSeries(id="campaign-series")
        yield Static("", id="campaign-status", markup=False)
        yield footer

    def on_mount(self) -> None:
        table = self.table_with_columns("#campaign-table", COLUMNS)
        self.query_one("#campaign-box").border_title = "Campaign"
        self.action_reload()
        table.focus()
        self.start_auto_refresh()

    def action_reload(self) -> None:
        views = self.guarded(self.service.campaigns)
        if views is None:
            return
        self.views = views
        threshold = self.service.settings.policy.campaign_complaint_threshold
        table = self.query_one("#campaign-table", DataTable)
        row = table.cursor_row
        table.clear()
        for v in views:
            over = v.complaint_rate > threshold
            rate = Text(f"{v.complaint_rate:.2%}", justify="right",
                        style="bold red" if over else "")
            numbers = (v.awaiting_approval, v.accepted, v.delivered, v.deferred, v.bounced,
                       v.complaints, v.unsubscribes)
            label, style = STATE_LABELS.get(v.state, (v.state, ""))
            table.add_row(Text(clip(v.id, 22), no_wrap=True), Text(label, style=style),
                          *(Text(str(n), justify="right") for n in numbers), rate, key=v.id)
        if views:
            table.move_cursor(row=min(row, len(views) - 1))
        counts = {state: sum(v.state == state for v in views) for state in STATE_LABELS}
        self.query_one("#campaign-status", Static).update(
            f"{counts['pending']} awaiting approval, {counts['paused']} paused, "
            f"{counts['approved']} approved  -  a: approve, z: pause")
        self._show_detail()

    def selected(self) -> CampaignView | None:
        table = self.query_one("#campaign-table", DataTable)
        if not self.views or table.cursor_row >= len(self.views):
            return None
        return self.views[table.cursor_row]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        view = self.selected()
        box, detail = self.query_one("#campaign-box"), self.query_one("#campaign-detail", Static)
        series = self.query_one("#campaign-series", CampaignSeries)
        if view is None:
            box.border_title = "Campaign"
            detail.update("no campaigns yet: marketing mail names one in X-Phigate-Campaign")
            series.show(None)
            return
        box.border_title = f"Campaign {view.id}"
        if view.approved_at is not None:
            approval = (f"approved by {view.approved_by} from {view.approved_ip or 'local'} "
                        f"at {view.approved_at:%Y-%m-%d %H:%M} UTC")
        else:
            approval = "never approved"
        lines = [approval,
                 f"{view.awaiting_approval} recipient(s) awaiting approval; complaint rate "
                 f"{view.complaint_rate:.2%} ({view.complaints} of {view.delivered} delivered)"]
        results = self.guarded(lambda: self.service.campaign_results(view))
        if results is not None:
            lines += result_lines(results)
        if view.pause_reason:
            lines.append(f"paused: {view.pause_reason}")
        detail.update("\n".join(lines))
        series.show(results)

    # -- acting -------------------------------------------------------------------------------

    def action_approve(self) -> None:
        view = self.selected()
        if view is None or not self.may("campaign.approve"):
            return
        if view.state == "approved":
            self.notify(f"campaign {view.id} is already approved", markup=False)
            return
        who = self.service.identity
        verb = "Resume" if view.state == "paused" else "Approve"
        question = (f"{verb} campaign {view.id}? Its waiting mail is released. Recorded as "
                    f"{who.user} from {who.ip or 'local'}.")
        self.app.push_screen(
            ConfirmDialog(question, yes=verb),
            lambda yes: self.perform(lambda: self._approve(view.id)) if yes else None)

    def _approve(self, campaign_id: str) -> str:
        released = self.service.approve_campaign(campaign_id)
        return f"approved {campaign_id}: released {released} message(s)"

    def action_pause(self) -> None:
        view = self.selected()
        if view is None or not self.may("campaign.pause"):
            return
        if view.state == "paused":
            self.notify(f"campaign {view.id} is already paused", markup=False)
            return

        def pause(reason: str | None) -> None:
            if reason is not None:
                self.perform(lambda: self._pause(view.id, reason))

        self.app.push_screen(ReasonDialog(
            f"Pause campaign {view.id}? Its queued mail is held until it is approved again. "
            "Reason:"), pause)

    def _pause(self, campaign_id: str, reason: str) -> str:
        held = self.service.pause_campaign(campaign_id, reason=reason)
        return f"paused {campaign_id}: held {held} message(s)"


_LEVELS = {"ok": "under the 0.10% line", "warning": "WARNING: at or over the 0.10% line",
           "over": "OVER the pause line"}


def result_lines(results: CampaignResults) -> list[str]:
    """Counts, bounce reasons, the rate lines and the estimated opens, a few short lines."""
    v = results.view
    reasons = ", ".join(f"{name} {count}" for name, count in sorted(
        results.bounced_by_category.items(), key=lambda item: -item[1]))
    lines = [f"sent {v.accepted}  delivered {v.delivered}  deferred {v.deferred}  bounced "
             f"{v.bounced}" + (f" ({reasons})" if reasons else ""),
             f"complaints {_LEVELS[results.complaint_rate.level]}; unsubscribes "
             f"{v.unsubscribes} ({results.unsubscribe_rate.value:.2%})"]
    opens = results.opens
    if opens is None:
        lines.append("opens: not tracked (X-Phigate-Track-Opens: yes opts in)")
    else:
        lines.append(f"opens: {opens['unique_opens']} estimated unique "
                     f"({opens['estimated_open_rate']:.1%} of delivered); "
                     f"{opens['proxy_fetches']} proxy fetches apart")
    return lines
