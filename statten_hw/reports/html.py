"""Self-contained HTML reports: the markdown summary plus matplotlib figures embedded as PNG."""
from __future__ import annotations

import base64
import html
import io


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


def html_page(title: str, markdown: str, figures: list[tuple[str, str]]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
             "<body style='font-family:sans-serif'>", f"<pre>{html.escape(markdown)}</pre>"]
    for caption, data in figures:
        parts.append(f"<h2>{html.escape(caption)}</h2>"
                     f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
