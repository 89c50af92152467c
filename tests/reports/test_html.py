"""The HTML reports show our markdown as real HTML: headings, lists and pipe tables, all escaped."""
from __future__ import annotations

from html.parser import HTMLParser

from statten_hw.reports.html import html_page, markdown_html

MARKDOWN = """# Mapping on <chip>

- cores: **59** on 1 chip(s)
- execution: `step`

| layer | neurons | cores |
|---|---|---|
| a<b | 256 | 0, 1 |
| head | 10 | 2 |

plain text & more
"""


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_cell = tag in ("td", "th")

    def handle_endtag(self, tag):
        self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.cells.append(data)


def test_tables_lists_and_headings_become_html():
    parsed = _Collect()
    parsed.feed(markdown_html(MARKDOWN))
    assert parsed.tags.count("table") == 1 and parsed.tags.count("tr") == 3
    assert parsed.cells == ["layer", "neurons", "cores", "a<b", "256", "0, 1", "head", "10", "2"]
    assert parsed.tags.count("li") == 2 and "h1" in parsed.tags and "b" in parsed.tags and "code" in parsed.tags


def test_text_is_escaped():
    page = html_page("t", MARKDOWN, [])
    assert "&lt;chip&gt;" in page and "a&lt;b" in page and "&amp; more" in page
    assert "<chip>" not in page
