"""`entropy-rl report`: one self-contained HTML file (figures embedded), the same as Markdown
next to the figures as PNG, and the verdicts as JSON, from runs loaded by `report.data`."""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path

from entropy_rl.analysis.report.data import RunData, plural
from entropy_rl.analysis.report.sections import SECTIONS, Section, Verdict
from entropy_rl.runs.atomic import write_atomic
from entropy_rl.runs.layout import MARKDOWN_FILE, REPORT_FILE, VERDICTS_FILE

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}
img{max-width:100%}.held{color:#176417}.partly{color:#8a5a00}.not{color:#a01818}
code{background:#f3f3f3;padding:1px 4px}
"""


def _status_class(status: str) -> str:
    return {"held": "held", "partly held": "partly", "did not hold": "not"}.get(status, "")


def _verdict_list(verdicts: list[Verdict]) -> str:
    items = "".join(
        f"<li><b>{html.escape(v.claim)}</b>: <span class='{_status_class(v.status)}'>"
        f"{html.escape(v.status)}</span>. {html.escape(v.detail)}</li>"
        for v in verdicts
    )
    return f"<ul>{items}</ul>"


def _block_html(block: tuple, figures: dict[str, bytes]) -> str:
    kind = block[0]
    if kind == "text":
        return f"<p>{html.escape(block[1])}</p>"
    if kind == "table":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in block[2]
        )
        return f"<table><tr>{head}</tr>{body}</table>"
    data = base64.b64encode(figures[block[1]]).decode("ascii")
    return (
        f"<figure><img alt='{block[1]}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{block[1]}</figcaption></figure>"
    )


def _section_html(section: Section) -> str:
    body = "".join(_block_html(block, section.figures) for block in section.blocks)
    return f"<h2>{html.escape(section.heading)}</h2>{body}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _section_markdown(section: Section) -> str:
    lines = [f"## {section.heading}", ""]
    for block in section.blocks:
        if block[0] == "text":
            lines += [block[1], ""]
        elif block[0] == "table":
            lines.append("| " + " | ".join(map(_cell, block[1])) + " |")
            lines.append("|" + "---|" * len(block[1]))
            lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in block[2]] + [""]
        else:
            lines += [f"![{block[1]}]({block[1]})", ""]
    return "\n".join(lines)


def _verdict_markdown(verdicts: list[Verdict]) -> str:
    return "\n".join(f"- **{v.claim}**: {v.status}. {v.detail}" for v in verdicts)


def _inputs(runs: list[RunData]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r.task)}</td><td>{html.escape(r.size)}</td>"
        f"<td>{html.escape(r.method)}</td><td>{r.seed if r.seed is not None else '–'}</td>"
        f"<td>{len(r.records)}</td><td>{html.escape(r.source)}</td></tr>"
        for r in runs
    )
    return (
        "<details><summary>Inputs: "
        + f"{plural(len(runs), 'run')}</summary><table><tr><th>task</th>"
        "<th>size</th><th>method</th><th>seed</th><th>records</th><th>source</th></tr>"
        f"{rows}</table></details>"
    )


def build_report(
    runs: list[RunData], out: Path, title: str, command: str, notes: list[str] = ()
) -> Path:
    """Write OUT/report.html, OUT/report.md, OUT/<figure>.png and OUT/verdicts.json; returns
    the HTML path."""
    sections = [make(runs) for make in SECTIONS]
    verdicts = sorted(
        (v for s in sections for v in s.verdicts),
        key=lambda v: (not v.claim[0].isdigit(), v.claim),
    )
    for section in sections:
        for name, png in section.figures.items():
            write_atomic(out / name, png)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>Made by <code>{html.escape(command)}</code> on {time.strftime('%Y-%m-%d %H:%M')}.</p>"
        + "".join(f"<p>{html.escape(note)}</p>" for note in notes)
        + "<h2>The paper's claims at this scale</h2>"
        f"{_verdict_list(verdicts)}{_inputs(runs)}"
        + "".join(_section_html(s) for s in sections)
        + "</body></html>"
    )
    markdown = "\n\n".join(
        [
            f"# {title}",
            f"Made by `{command}` on {time.strftime('%Y-%m-%d %H:%M')}, from "
            f"{plural(len(runs), 'run')}; "
            f"the same content with embedded figures: [{REPORT_FILE}]({REPORT_FILE}).",
            *notes,
            "## The paper's claims at this scale",
            _verdict_markdown(verdicts),
            *(_section_markdown(s) for s in sections),
        ]
    )
    write_atomic(out / MARKDOWN_FILE, markdown + "\n")
    write_atomic(
        out / VERDICTS_FILE,
        json.dumps([v.__dict__ for v in verdicts], indent=2, ensure_ascii=False) + "\n",
    )
    return write_atomic(out / REPORT_FILE, page)
