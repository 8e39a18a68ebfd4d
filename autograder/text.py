"""Text the kernel influenced, made safe for where it is shown.

Messages in a grade (a student's exception text, a diagnostic naming their cell, a review
flag quoting their line) are partly chosen by student code. Shown raw they could rewrite
what an instructor sees: a carriage return and terminal escape codes can overwrite a
"FLAGGED 0/28" line with "ok 28/28", bidirectional-override characters reorder a line, and
Markdown or HTML in a report could add links or hide rows. So:

    clean(text)           at the source (the journal): no control characters but newline
                          and tab, no bidi/zero-width controls, bounded length
    one_line(text)        for a terminal table: clean, and newlines/tabs as spaces
    markdown_inline(text) for a Markdown report cell or list item: one line, markup escaped

(HTML pages use `html.escape`; CSV cells use `autograder.export.cell_text`.)
"""
from __future__ import annotations

import re

# C0 controls except \t and \n, DEL, C1 controls, zero-width and bidirectional controls,
# line/paragraph separators, the byte-order mark
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_MARKDOWN = re.compile(r"([\\`*\[\]<>|!])")  # what could start code, emphasis, a link, an image, HTML or a cell
MAX_MESSAGE = 3000


def clean(text, limit: int = MAX_MESSAGE) -> str:
    """`text` as a string with every control character shown as U+FFFD, at most `limit` long."""
    text = _CONTROL.sub("\ufffd", str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(text, limit: int = MAX_MESSAGE) -> str:
    """`clean`, on one line."""
    return clean(str(text).replace("\r", " ").replace("\n", " ").replace("\t", " "), limit)


def markdown_inline(text, limit: int = MAX_MESSAGE) -> str:
    """`one_line`, with Markdown and HTML markup escaped (safe in a list item or table cell)."""
    return _MARKDOWN.sub(r"\\\1", one_line(text, limit))
