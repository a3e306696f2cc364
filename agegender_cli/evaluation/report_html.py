"""The report's blocks as one self-contained HTML page: inline style, figures as data: URIs."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from agegender_cli.evaluation.report import TITLE, Block, FigureRef, Text
from agegender_cli.evaluation.tables import TableModel

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 0.3em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; vertical-align: top; }
td:not(:first-child) { text-align: right; }
th { background: #f0f0f0; }
code { font-size: 0.9em; word-break: break-all; }
figure { margin: 1.5em 0; }
figure img, figure object { max-width: 100%; }
figcaption, .note { font-size: 0.9em; color: #444; }
"""
MEDIA_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".pdf": "application/pdf"}


def inline(text: str) -> str:
    """Escaped text with `code` and **bold** turned into their tags."""
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]*)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def html_table(model: TableModel) -> str:
    head = "".join(f"<th>{inline(c)}</th>" for c in model.header)
    rows = []
    for i, row in enumerate(model.rows):
        cells = "".join(f"<td><strong>{inline(c)}</strong></td>" if (i, j) in model.emphasis else
                        f"<td>{inline(c)}</td>" for j, c in enumerate(row))
        rows.append(f"<tr>{cells}</tr>")
    note = f'<p class="note">{inline(model.note)}</p>' if model.note else ""
    return f"<h2>{inline(model.title)}</h2>\n<table><tr>{head}</tr>\n" + "\n".join(rows) + f"\n</table>{note}"


def data_uri(path: str | Path) -> str:
    path = Path(path)
    media = MEDIA_TYPES[path.suffix.lower()]
    return f"data:{media};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def html_figure(number: int, path: str, caption: str) -> str:
    uri = data_uri(path)
    label = f"Figure {number}"
    if uri.startswith("data:application/pdf"):
        shown = f'<object data="{uri}" type="application/pdf" width="100%" height="640">{label} (PDF)</object>'
    else:
        shown = f'<img src="{uri}" alt="{label}">'
    return f"<figure>{shown}<figcaption><em>{label}.</em> {inline(caption)}</figcaption></figure>"


def html_page(title: str, blocks: list) -> str:

    body = [f"<h1>{inline(title)}</h1>"]
    figures_started = False
    for block in blocks:
        if isinstance(block, Text):
            body.append(f"<p>{inline(block.text)}</p>")
        elif isinstance(block, TableModel):
            body.append(html_table(block))
        elif isinstance(block, FigureRef):
            if not figures_started:
                body.append("<h2>Figures</h2>")
                figures_started = True
            body.append(html_figure(block.number, block.path, block.caption))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{inline(title)}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def html_report(blocks: list[Block]) -> str:
    """One self-contained HTML page: figures inline as data: URIs, no external reference."""
    return html_page(TITLE, blocks)
