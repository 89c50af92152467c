"""Self-contained HTML reports: the markdown summary plus matplotlib figures embedded as PNG."""
from __future__ import annotations

import base64
import html
import io
import re


def figure_png(fig) -> str:
    """A figure as base64 PNG (no timestamp metadata, so equal figures give equal bytes); closes it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (reports are written on headless machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:auto}"
         "table{border-collapse:collapse;font-size:13px;margin:8px 0}"
         "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
         "td:first-child,th:first-child{text-align:left}img{max-width:100%}")


def _inline(text: str) -> str:
    """Escape, then ``**bold**`` and ```code``` (the only inline markup our markdown reports use)."""
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    """A pipe table (header, ``|---|`` rule, rows) as an HTML table."""
    head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(lines[0]))
    rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(r)) + "</tr>" for r in lines[2:])
    return f"<table><tr>{head}</tr>{rows}</table>"


def markdown_html(markdown: str) -> str:
    """Our reports' markdown (headings, bullet lists, pipe tables, paragraphs) as HTML, so the page
    shows real tables; anything else is kept as an escaped paragraph."""
    out: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append(_table(lines[i:j]))
            i = j
            continue
        if line.startswith("- "):
            j = i
            while j < len(lines) and lines[j].startswith("- "):
                j += 1
            out.append("<ul>" + "".join(f"<li>{_inline(item[2:])}</li>" for item in lines[i:j]) + "</ul>")
            i = j
            continue
        heading = re.match(r"(#{1,6}) (.*)", line)
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(out)


def html_page(title: str, markdown: str, figures: list[tuple[str, str]]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body>", markdown_html(markdown)]
    for caption, data in figures:
        parts.append(f"<h2>{html.escape(caption)}</h2>"
                     f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
