"""The postmortem for a browser: the Markdown rendered as one HTML page.

markdown-it-py renders it with raw HTML switched off (any `<…>` from an event is shown as
text, escaped) and without links, images or autolinks (nothing from an event becomes a
`href`), so a note or an alert summary can never inject markup into the page.
"""

from __future__ import annotations

from html import escape

from markdown_it import MarkdownIt

__all__ = ["as_html", "wants_html"]

_RENDERER = (
    MarkdownIt("commonmark", {"html": False, "linkify": False})
    .enable("table")
    .disable(["link", "image", "autolink"])
)
_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } code { background: #f4f4f4; padding: 0 .2em; }
em { color: #666; }
"""


def wants_html(accept: str | None) -> bool:
    """True when the client asks for text/html at least as much as for Markdown (a browser
    does; curl's `*/*` and an explicit `text/markdown` do not)."""
    weights: dict[str, float] = {}
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        weights[media.lower()] = max(quality, weights.get(media.lower(), 0.0))
    html = weights.get("text/html", 0.0)
    return html > 0 and html >= weights.get("text/markdown", 0.0)


def as_html(markdown: str, title: str) -> str:
    """A complete HTML page showing `markdown`."""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"{_RENDERER.render(markdown)}</body>\n</html>\n"
    )
