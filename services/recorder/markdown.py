"""Text taken from events, made safe to put into Markdown (and into the HTML it becomes).

An alert's summary, a note or a person's name is written by whoever sent it: in the
postmortem it must stay text. `text` flattens line breaks (a value can never start a line
of its own, so never a heading or a list) and backslash-escapes every character that
starts Markdown or HTML syntax; `code` makes a code span that cannot be closed early.
"""

from __future__ import annotations

import re

__all__ = ["code", "text"]

# Emphasis, code, links and images, raw HTML and autolinks, entities, tables, headings,
# strikethrough, and the escape character itself.
_SPECIAL = re.compile(r"([\\`*_\[\]<>&|#~!])")
# What would start a block if it stood first on a line: a list or a thematic break.
_MARK_START = re.compile(r"^([-+=])")
_NUMBER_START = re.compile(r"^(\d+)([.)])")


def text(value: object) -> str:
    """`value` as literal Markdown text on one line."""
    flat = " ".join(str(value).split())
    escaped = _SPECIAL.sub(r"\\\1", flat)
    escaped = _MARK_START.sub(r"\\\1", escaped)
    return _NUMBER_START.sub(r"\1\\\2", escaped)


def code(value: object) -> str:
    """`value` as a Markdown code span (backticks and table pipes dropped from it)."""
    flat = " ".join(str(value).split()).replace("`", "").replace("|", "")
    return f"`{flat}`" if flat else ""
