"""The dashboard: does mail flow? Refreshed from a worker thread, so a large queue never
freezes the screen."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from phigate.admin import Dashboard
from phigate.admin_tui.screens.base import AdminScreen
from phigate.admin_tui.widgets.format import clip, seconds
from phigate.errors import PhigateError

REFRESH_SECONDS = 2.0
SERIES = ("delivered", "deferred", "bounced")
#: The queue panel is 40 cells at 80 columns (borders and padding take 2).
LOCKOUT_CHARS = 38


class DashboardScreen(AdminScreen):
    BINDINGS = [("g", "refresh", "Refresh")]

    def compose(self) -> ComposeResult:
        header, footer = self.chrome()
        yield header
        with Horizontal(id="dash-top"):
            yield Static("loading…", id="dash-queue", classes="panel", markup=False)
            with Vertical(id="dash-hour", classes="panel"):
                for name in SERIES:
                    with Horizontal(classes="series"):
                        yield Static(name, id=f"label-{name}", classes="series-label", markup=False)
                        yield Sparkline([0], id=f"spark-{name}", classes=name)
        yield Static("", id="dash-deferrals", classes="panel", markup=False)
        yield footer

    def on_mount(self) -> None:
        self.border_title = "Dashboard"
        self.query_one("#dash-queue").border_title = "Queue"
        self.query_one("#dash-hour").border_title = "Last hour (5-minute steps)"
        self.query_one("#dash-deferrals").border_title = "Top deferral reasons"
        self.action_refresh()
        self.set_interval(REFRESH_SECONDS, self.action_refresh)

    #: A load is running: the next tick waits for it instead of cancelling it, so a store
    #: slower than REFRESH_SECONDS still gets its figures on screen.
    _loading = False

    def action_refresh(self) -> None:
        if self._loading:
            return
        self._loading = True
        self._load()

    @work(thread=True, exclusive=True, group="dashboard")
    def _load(self) -> None:
        try:
            figures = self.service.dashboard()
        except PhigateError as error:
            self.app.call_from_thread(self.notify, str(error), severity="error", markup=False)
            return
        finally:
            self._loading = False
        self.app.call_from_thread(self.show, figures)

    def show(self, d: Dashboard) -> None:
        states = d.messages_by_state
        verdicts = d.phi_verdicts
        shown = [f"{state} {states[state]}" for state in
                 ("active", "held", "quarantined", "awaiting-approval", "corrupt")
                 if states.get(state)]
        lines = [
            f"queued {d.recipients_by_state.get('queued', 0)}  "
            f"deferred {d.recipients_by_state.get('deferred', 0)}",
            "  ".join(shown) or "no messages in the queue",
            f"oldest queued  {seconds(d.oldest_pending_age_seconds)}",
            f"quarantine     {d.quarantined} (oldest {seconds(d.oldest_quarantined_age_seconds)})",
            f"PHI 24h  phi {verdicts.get('phi', 0)}  ident {verdicts.get('identifiers', 0)}  "
            f"none {verdicts.get('none', 0)}",
            f"TLS deferrals  {d.tls_deferrals} (PHI {d.phi_tls_deferrals})",
        ]
        if d.incidents:  # domains refusing us for a reason on our side: marketing waits
            reasons = ", ".join(f"{reason} {count}" for reason, count in
                                sorted(d.incidents.items()))
            lines.append(f"incidents      {sum(d.incidents.values())} ({reasons}); "
                         "marketing held, see feedback incidents")
        if d.lockouts:  # AUTH refused for these names from these addresses (user unlock)
            first = d.lockouts[0]
            more = f" +{len(d.lockouts) - 1}" if len(d.lockouts) > 1 else ""
            lines.append(clip(f"lockouts       {first.user}@{first.client_ip}{more}",
                              LOCKOUT_CHARS))
        self.query_one("#dash-queue", Static).update("\n".join(lines))
        for name in SERIES:
            series = getattr(d, name)
            self.query_one(f"#spark-{name}", Sparkline).data = [float(v) for v in series]
            self.query_one(f"#label-{name}", Static).update(f"{name:<9} {sum(series):>6}")
        deferrals = [f"{r.recipients:>6}  {clip(r.domain, 24):<24} {r.code or '---'} "
                     f"{clip(r.text, 36)}" for r in d.top_deferrals] or ["none"]
        self.query_one("#dash-deferrals", Static).update("\n".join(deferrals))
