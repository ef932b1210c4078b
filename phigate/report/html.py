"""The report as one self-contained HTML page (also the source of the PDF)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

_CSS = """
@page { size: A4; margin: 18mm 16mm; @bottom-right { content: "page " counter(page)
  " of " counter(pages); font-size: 8pt; color: #555; } }
body { font-family: "DejaVu Sans", sans-serif; font-size: 9.5pt; color: #111; }
h1 { font-size: 16pt; margin: 0 0 2mm; } h2 { font-size: 11.5pt; margin: 6mm 0 2mm;
  border-bottom: 1px solid #999; }
table { border-collapse: collapse; margin: 1mm 0 2mm; }
td, th { border: 1px solid #bbb; padding: 1mm 2.5mm; text-align: left; }
td.n { text-align: right; } .ok { color: #05602b; font-weight: bold; }
.bad { color: #a00000; font-weight: bold; } .note { color: #444; font-size: 8.5pt; }
"""


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f'<td class="n">{value}</td>' if isinstance(value, int | float)
                        else f"<td>{escape(str(value if value is not None else '-'))}</td>"
                        for value in row)
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}">none</td></tr>')
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _pairs(mapping: Mapping[str, Any], key: str = "", value: str = "count") -> str:
    return _table((key, value), sorted(mapping.items()))


def _messages(r: Mapping[str, Any]) -> str:
    m = r["messages"]
    rows = [(cls, count, m["with_phi_by_class"].get(cls, 0))
            for cls, count in m["by_class"].items()]
    rows.append(("all", m["total"], m["with_phi"]))
    return ("<h2>1. Messages by class</h2>" + _table(("class", "messages", "with PHI"), rows)
            + f"<p>Share with PHI: {m['phi_share']:.1%}</p>"
            + "<h2>2. TLS that PHI left with</h2>"
            + _table(("level", "deliveries"), r["phi_tls"].items())
            + '<p class="note">dane and mta-sts: the receiving domain\'s published policy was '
              "met; verified: certificate valid for the host; encrypted: TLS without "
              "certificate check (a BAA partner's private CA).</p>")


def _quarantine_and_lists(r: Mapping[str, Any]) -> str:
    q = r["quarantine"]
    campaigns = [(c["id"], c["state"], c["messages"], c["approved_by"], c["approved_ip"],
                  c["approved_at"], _opens(c.get("estimated_opens")))
                 for c in r["campaigns"]]
    incidents = [(i["domain"], i["reason"], i["bounces"], i["first_seen"], i["last_seen"])
                 for i in r["incidents"]]
    return (f"<h2>3. Quarantine</h2><p>{q['total']} message(s) quarantined.</p>"
            + _pairs(q["by_reason"], "reason (rule)") + _pairs(q["outcomes"], "outcome")
            + f"<h2>4. Suppressions</h2><p>{r['suppressions']['added']} added.</p>"
            + _pairs(r["suppressions"]["by_source"], "source (scope)")
            + "<h2>5. Campaigns and their approval</h2>"
            + _table(("campaign", "state", "messages", "approved by", "from", "at",
                      "opens (estimated)"), campaigns)
            + '<p class="note">Opens: only campaigns that opted in; unique opens counted '
              "without recording who opened (proxy prefetches apart).</p>"
            + "<h2>6. Incidents</h2>"
            + _table(("domain", "reason", "bounces", "first seen", "last seen"), incidents))


def _opens(opens: Mapping[str, Any] | None) -> str:
    if not opens:
        return "not tracked"
    return f"{opens['unique_opens']} (+{opens['proxy_fetches']} proxy)"


def _audit(r: Mapping[str, Any]) -> str:
    a, chain, ret = r["audit"], r["audit_chain"], r["retention"]
    verdict = (f'<span class="ok">verified</span>: {chain["entries_checked"]} entries'
               if chain["ok"] else f'<span class="bad">BROKEN</span> at entry '
               f'{chain["broken_at_entry"]}: {escape(str(chain["problem"]))}')
    return ("<h2>7. Admin actions (audit log)</h2>"
            + f"<p>{a['entries']} entries; admins: {escape(', '.join(a['admins']) or 'none')}"
              "</p>" + _pairs(a["by_action"], "action")
            + f"<h2>8. PHI reveals</h2><p>{a['phi_reveals']} reveal(s) of message content.</p>"
            + _pairs(a["phi_reveals_by_admin"], "admin", "reveals")
            + f"<h2>9. Audit chain</h2><p>{verdict}</p>"
            + "<h2>10. Retention</h2>"
            + _table(("purge runs", "last run", "bodies destroyed", "messages removed",
                      "audit entries removed"),
                     [(ret["runs"], ret["last_run"], ret["bodies_destroyed"],
                       ret["messages_removed"], ret["audit_entries_removed"])]))


def render_html(report: Mapping[str, Any], *, installation: str) -> str:
    title = f"phigate compliance report {report['month']}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1>"
            f'<p class="note">{escape(installation)}; generated {report["generated_at"]} '
            "(UTC). Counts only: this report holds no patient address, subject or "
            "message content.</p>"
            + _messages(report) + _quarantine_and_lists(report) + _audit(report)
            + "</body></html>\n")


def render_pdf(html: str) -> bytes:
    from weasyprint import HTML  # type: ignore[import-untyped]  # only the PDF needs it

    pdf: bytes = HTML(string=html).write_pdf()
    return pdf
