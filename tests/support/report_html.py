"""Read pmf's validation report (HTML) the way a person reads it: the counts, the table rows, what it loads."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Anything that makes a browser reach the network: an absolute or protocol-relative URL in an attribute,
# a CSS url()/@import, a <script>/<link>/<iframe>/<img> element (the report needs none), any http(s) URL.
EXTERNAL = re.compile(
    r"""(?:src|href|action|srcset|poster|data)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//|url\s*\(|@import"""
    r"""|<\s*(?:script|link|iframe|img|object|embed)\b|https?://""",
    re.IGNORECASE,
)


def external_references(html: str) -> list[str]:
    return [m.group(0) for m in EXTERNAL.finditer(html)]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self._count: str | None = None
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "span" and attributes.get("class") == "n":
            self._count = attributes.get("id")
        elif tag == "table":
            self._table = attributes.get("class") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "span" and self._cell is not None:
            self._cell.append(" ")  # a tag beside the text (`pmf`) reads as a separate word

    def handle_endtag(self, tag: str) -> None:
        if tag == "span":
            self._count = None
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._count:
            self.counts[self._count] = int(data.replace(",", ""))
        if self._cell is not None:
            self._cell.append(data)


def report_counts(html: str) -> dict[str, int]:
    """`{"evaluated": 32, "passed": 27, "failed": 5}` as shown at the top of the page."""
    reader = _Reader()
    reader.feed(html)
    return reader.counts


def table_rows(html: str, kind: str) -> list[list[str]]:
    """The body rows of the `failed` or `passed` table: [column, check, expected, observed] each (a check of
    pmf's own reads `at_least_two_classes pmf`)."""
    reader = _Reader()
    reader.feed(html)
    return reader.tables.get(kind, [])[1:]  # the first row is the header
