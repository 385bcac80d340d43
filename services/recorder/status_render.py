"""The status page as HTML (no script, every text escaped) and its Atom feed (RFC 4287,
built with ElementTree, which escapes every text it writes)."""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET

from services.recorder.status import PublicStatus

__all__ = ["render_atom", "render_html"]

_ATOM = "http://www.w3.org/2005/Atom"
_WORDS = {
    "operational": "Operational",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
}
_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 46em; margin: 2em auto; padding: 0 1em; }
.state { padding: .8em 1em; border-radius: .4em; background: #e8f5e9; }
.degraded_performance { background: #fff8e1; } .partial_outage { background: #fff0e0; }
.major_outage { background: #fdecea; }
li { margin: .3em 0; } .muted { color: #666; font-size: .9em; }
article { border-top: 1px solid #ddd; margin-top: 1em; }
"""


def render_html(status: PublicStatus, feed_url: str) -> str:
    e = html.escape
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="refresh" content="60">',
        f"<title>{e(status.title)}</title>",
        f'<link rel="alternate" type="application/atom+xml" href="{e(feed_url)}" '
        f'title="{e(status.title)}">',
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{e(status.title)}</h1>",
        f'<p class="state {e(status.state)}" id="overall">{e(_WORDS[status.state])}</p>',
        '<h2>Components</h2><ul id="components">',
    ]
    for c in status.components:
        out.append(
            f'<li data-component="{e(c.name)}" data-state="{e(c.state)}">{e(c.label)}: '
            f"<strong>{e(_WORDS[c.state])}</strong></li>"
        )
    out.append('</ul><h2>Incidents</h2><div id="incidents">')
    if not status.incidents:
        out.append('<p class="muted">No incidents reported.</p>')
    for incident in status.incidents:
        where = ", ".join(incident.components) or "the service"
        out.append(f'<article data-incident="{e(incident.id)}">')
        out.append(f"<h3>{e(incident.status.capitalize())} — {e(where)}</h3>")
        for update in incident.updates:
            text = e(update.text).replace("\n", "<br>")
            out.append(
                f"<p><strong>{e(update.status.capitalize())}</strong> — {text}<br>"
                f'<span class="muted">{update.at:%Y-%m-%d %H:%M} UTC</span></p>'
            )
        out.append("</article>")
    out.append(
        f'</div><p class="muted">Updated {status.generated_at:%Y-%m-%d %H:%M:%S} UTC · '
        f'<a href="{e(feed_url)}">Atom feed</a></p></body></html>'
    )
    return "\n".join(out)


def render_atom(status: PublicStatus, page_url: str, feed_url: str) -> bytes:
    ET.register_namespace("", _ATOM)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        node = ET.SubElement(parent, f"{{{_ATOM}}}{tag}", attrs)
        if text is not None:
            node.text = text
        return node

    feed = ET.Element(f"{{{_ATOM}}}feed")
    sub(feed, "id", f"{page_url}#feed")
    sub(feed, "title", status.title)
    newest = max((i.updated_at for i in status.incidents), default=status.generated_at)
    sub(feed, "updated", newest.isoformat())
    sub(feed, "link", href=page_url)
    sub(feed, "link", rel="self", href=feed_url)
    sub(sub(feed, "author"), "name", status.title)
    for incident in status.incidents:
        where = ", ".join(incident.components) or "the service"
        for update in incident.updates:
            entry = sub(feed, "entry")
            sub(entry, "id", f"urn:uuid:{update.id}")
            sub(entry, "title", f"{update.status.capitalize()}: {where}")
            sub(entry, "updated", update.at.isoformat())
            sub(entry, "link", href=f"{page_url}#{incident.id}")
            sub(entry, "content", update.text, type="text")
    written: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return written
