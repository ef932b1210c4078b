"""``phigate campaign show`` as text: the figures, the rate lines, the hourly series."""

from __future__ import annotations

from io import StringIO

from phigate.admin.campaign_results import CampaignResults, Rate
from phigate.cli.table import write_table

_LEVEL_TEXT = {"ok": "", "warning": "  WARNING: at or over the 0.10% line",
               "over": "  OVER the pause line"}


def _rate(label: str, rate: Rate) -> str:
    return (f"{label:<14}{rate.count:>8}  {rate.value:.2%} of delivered "
            f"(warn {rate.warning:.2%}, pause {rate.limit:.2%}){_LEVEL_TEXT[rate.level]}\n")


def format_results(results: CampaignResults) -> str:
    v = results.view
    out = StringIO()
    approved = (f"approved by {v.approved_by} from {v.approved_ip or 'local'} at "
                f"{v.approved_at:%Y-%m-%d %H:%M}" if v.approved_at else "not approved")
    out.write(f"campaign      {v.id}  ({v.state}; {approved})\n")
    if v.pause_reason:
        out.write(f"paused        {v.pause_reason}\n")
    for label, value in (("sent", v.accepted), ("delivered", v.delivered),
                         ("deferred", v.deferred), ("awaiting", v.awaiting_approval)):
        out.write(f"{label:<14}{value:>8}\n")
    reasons = ", ".join(f"{name} {count}" for name, count
                        in sorted(results.bounced_by_category.items(), key=lambda i: -i[1]))
    out.write(f"{'bounced':<14}{v.bounced:>8}" + (f"  ({reasons})" if reasons else "") + "\n")
    out.write(_rate("complaints", results.complaint_rate))
    out.write(_rate("unsubscribes", results.unsubscribe_rate))
    if results.opens is not None:
        opens = results.opens
        out.write(f"{'opens':<14}{opens['unique_opens']:>8}  estimated unique opens "
                  f"({opens['estimated_open_rate']:.1%} of delivered); "
                  f"{opens['proxy_fetches']} proxy fetches counted apart\n")
    if results.series:
        out.write("\n")
        write_table(out, ("HOUR (UTC)", "ACCEPTED", "DELIVERED", "DEFERRED", "BOUNCED",
                          "COMPLAINTS", "UNSUBS"),
                    ([f"{h.hour:%Y-%m-%d %H:00}", str(h.accepted), str(h.delivered),
                      str(h.deferred), str(h.bounced), str(h.complaints), str(h.unsubscribes)]
                     for h in results.series), right=range(1, 7))
    return out.getvalue()
