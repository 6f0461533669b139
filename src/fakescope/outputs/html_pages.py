"""Self-contained HTML reports: ``report.html`` per input and ``index.html`` over a run.

Nothing is fetched when a report is opened: styles are inline and images are ``data:`` URIs, so a report can be
mailed or archived on its own. Every piece of text from the input or the model goes through ``html.escape``.
"""
from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from ..atomic import atomic_open, write_text
from ..results import AGGREGATIONS, ScanResult
from .render import Highlight
from .tables import as_summary

VERDICT_COLOURS = {"fake": "#c62828", "real": "#2e7d32", "no_face": "#757575", "error": "#37474f",
                   "skipped": "#9e9e9e"}
MAX_HIGHLIGHT_TRACKS = 8

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #212121;
       background: #f5f5f5; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
section { background: #fff; border-radius: 8px; padding: 16px 20px; margin: 16px 0;
          box-shadow: 0 1px 3px rgba(0,0,0,.12); }
h1 { font-size: 20px; margin: 0 0 4px; word-break: break-all; }
h2 { font-size: 16px; margin: 0 0 12px; }
.verdict { display: flex; align-items: center; gap: 24px; color: #fff; border-radius: 8px; padding: 16px 24px; }
.verdict .label { font-size: 44px; font-weight: 800; letter-spacing: 1px; }
.verdict .score { font-size: 22px; }
.verdict .reason { font-size: 15px; }
.warning { background: #fff3e0; border-left: 6px solid #e65100; color: #bf360c; font-weight: 700;
           padding: 10px 14px; margin: 8px 0; border-radius: 4px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e0e0e0; vertical-align: top; }
th { background: #fafafa; }
th.num { text-align: right; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pill { display: inline-block; color: #fff; border-radius: 10px; padding: 1px 10px; font-weight: 700;
        font-size: 13px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; font-size: 14px; }
dt { color: #616161; }
dd { margin: 0; word-break: break-all; }
.mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; background: #fafafa; border: 1px solid #e0e0e0; border-radius: 6px; padding: 6px; }
figure img { display: block; width: 200px; height: auto; }
figure .pair { display: flex; gap: 6px; }
figcaption { font-size: 12px; color: #424242; margin-top: 4px; }
img.plot { max-width: 100%; height: auto; }
.muted { color: #757575; font-size: 13px; }
"""


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _pill(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, "#757575")
    return f'<span class="pill" style="background:{colour}">{escape(verdict.upper())}</span>'


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _page_head(title: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
    )


PAGE_TAIL = "</main>\n</body>\n</html>\n"


def _page(title: str, body: str) -> str:
    return _page_head(title) + body + PAGE_TAIL


def _verdict_section(result: ScanResult) -> str:
    colour = VERDICT_COLOURS.get(result.verdict, "#757575")
    score = ""
    if result.p_fake is not None:
        score = (f'<div class="score">p_fake <b>{result.p_fake:.3f}</b> '
                 f"(threshold {result.threshold:.2f})</div>")
    reason = f'<div class="reason">{escape(result.reason)}</div>' if result.reason else ""
    return (f'<div class="verdict" style="background:{colour}"><div class="label">'
            f"{escape(result.verdict.upper())}</div><div>{score}{reason}</div></div>\n")


def _warnings(result: ScanResult) -> str:
    return "".join(f'<div class="warning">&#9888; {escape(warning)}</div>\n' for warning in result.warnings)


def _definition_list(rows: Sequence[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{escape(name)}</dt><dd>{value}</dd>" for name, value in rows)
    return f"<dl>{items}</dl>\n"


def _input_section(result: ScanResult) -> str:
    media = result.media
    rows = [("input", escape(result.input)), ("kind", escape(str(result.kind or "unknown")))]
    if media:
        rows.append(("size", f"{media.get('width')} x {media.get('height')} px"))
        if result.kind == "video":
            rows.append(("frames", f"{media.get('frame_count')} at {media.get('fps')} fps, "
                                   f"{media.get('duration_s')} s"))
    rows += [
        ("frame selection", escape(result.selection or "every frame")),
        ("frames analysed", f"{result.frames_analysed} ({result.frames_with_faces} with a face)"),
    ]
    return f"<section><h2>Input</h2>\n{_definition_list(rows)}</section>\n"


def _trend_section(result: ScanResult) -> str:
    trend = result.outputs.get("trend")
    if not trend or not Path(trend).is_file():
        return ""
    uri = _data_uri(Path(trend).read_bytes(), "image/png")
    return (f'<section><h2>p_fake over time</h2>\n<img class="plot" alt="p_fake over time per face track" '
            f'src="{uri}"></section>\n')


def _tracks_section(result: ScanResult) -> str:
    if not result.tracks:
        return ""
    rows = "".join(
        f"<tr><td>#{track.track_id}</td><td class=\"num\">{track.frames}</td>"
        f"<td class=\"num\">{track.first_frame}&ndash;{track.last_frame}</td>"
        f"<td class=\"num\">{track.p_fake:.3f}</td><td class=\"num\">{track.p_fake_max:.3f}</td>"
        f"<td>{_pill(track.label)}</td><td>{'yes' if track.counted else 'no (too short)'}</td></tr>\n"
        for track in result.tracks
    )
    return (
        "<section><h2>Face tracks</h2>\n<table><thead><tr><th>track</th><th class=\"num\">frames</th>"
        "<th class=\"num\">frame range</th><th class=\"num\">mean p_fake</th><th class=\"num\">max p_fake</th>"
        "<th>label</th><th>counted in verdict</th></tr></thead>\n"
        f"<tbody>{rows}</tbody></table></section>\n"
    )


def _highlights_section(highlights: Sequence[Highlight], threshold: float) -> str:
    shown = [h for h in highlights if h.thumbnail]
    tracks = sorted({h.track_id for h in shown})[:MAX_HIGHLIGHT_TRACKS]
    shown = [h for h in shown if h.track_id in tracks]
    if not shown:
        return ""
    with_heatmap = any(h.heatmap_thumbnail for h in shown)
    figures = []
    for highlight in shown:
        images = f'<img alt="face, track {highlight.track_id}" src="{_data_uri(highlight.thumbnail, "image/jpeg")}">'
        if highlight.heatmap_thumbnail:
            uri = _data_uri(highlight.heatmap_thumbnail, "image/jpeg")
            images += f'<img alt="heatmap, track {highlight.track_id}" src="{uri}">'
        label = "fake" if highlight.p_fake is not None and highlight.p_fake >= threshold else "real"
        figures.append(
            f'<figure><div class="pair">{images}</div><figcaption>track #{highlight.track_id}, '
            f"frame {highlight.frame_index} ({highlight.time_s:.2f} s): p_fake {_score(highlight.p_fake)} "
            f"{_pill(label)}</figcaption></figure>"
        )
    note = ("Left: the face as annotated; right: the heatmap of the FAKE class (red: regions that pushed the score "
            "towards fake)." if with_heatmap else "The face region of each frame as annotated.")
    return (f"<section><h2>Most fake frames of each track</h2>\n<p class=\"muted\">{escape(note)}</p>\n"
            f'<div class="thumbs">{"".join(figures)}</div></section>\n')


def _model_section(result: ScanResult) -> str:
    model = result.model
    trained = model.get("trained")
    trained_text = "yes" if trained else '<b style="color:#c62828">NO: untrained weights, scores mean nothing</b>'
    rows = [
        ("model", escape(str(model.get("name", "unknown")))),
        ("trained", trained_text),
        ("weights", escape(str(model.get("weights") or "shipped default"))),
        ("sha256", f'<span class="mono">{escape(str(model.get("sha256", "")))}</span>'),
        ("device, precision", escape(f"{model.get('device', '')}, {model.get('precision', '')}")),
    ]
    onnx = model.get("onnx")
    if onnx:
        rows.append(("runtime", escape(f"ONNX Runtime ({', '.join(onnx.get('providers', []))}), "
                                       f"{Path(str(onnx.get('path', ''))).name}")))
    return f"<section><h2>Model</h2>\n{_definition_list(rows)}</section>\n"


def _rule_section(result: ScanResult) -> str:
    rule = AGGREGATIONS.get(result.aggregation, "")
    text = (f"Each analysed face gets p_fake from the model. Aggregation <b>{escape(result.aggregation)}</b>: "
            f"{escape(rule)} The input is <b>fake</b> when its score is at or above the threshold "
            f"<b>{result.threshold:.2f}</b>, otherwise <b>real</b>.")
    return f"<section><h2>How the verdict is computed</h2>\n<p>{text}</p></section>\n"


def _files_section(result: ScanResult, folder: Path) -> str:
    files: list[tuple[str, str]] = [
        (key, value) for key, value in result.outputs.items()
        if key not in ("dir", "report", "summary", "heatmap_frames") and isinstance(value, str)
    ]
    files.append(("summary", str(folder / "summary.json")))  # written right after the report
    files += [("heatmap frame", value) for value in result.outputs.get("heatmap_frames", [])]
    links = []
    for key, value in files:
        relative = os.path.relpath(Path(value).resolve(), folder.resolve())
        href = escape(Path(relative).as_posix(), quote=True)
        links.append(f'<li><a href="{href}">{escape(Path(relative).as_posix())}</a> <span class="muted">'
                     f"({escape(key)})</span></li>")
    return f"<section><h2>Files</h2>\n<ul>{''.join(links)}</ul></section>\n"


def render_input_page(result: ScanResult, highlights: Sequence[Highlight] = (), folder: Path | None = None) -> str:
    """The HTML of one input's report."""
    folder = folder or Path(".")
    body = (
        f"<h1>fakescope report: {escape(Path(result.input).name)}</h1>\n"
        f'<p class="muted">{escape(result.input)}</p>\n'
        + _verdict_section(result)
        + _warnings(result)
        + _input_section(result)
        + _trend_section(result)
        + _tracks_section(result)
        + _highlights_section(highlights, result.threshold)
        + _rule_section(result)
        + _model_section(result)
        + _files_section(result, folder)
    )
    return _page(f"fakescope: {Path(result.input).name}: {result.verdict}", body)


def write_input_page(result: ScanResult, path: str | Path, highlights: Sequence[Highlight] = ()) -> Path:
    """Write ``report.html`` for one input and return its path."""
    path = Path(path)
    return write_text(path, render_input_page(result, highlights, path.parent))


def write_run_index(entries: Iterable[ScanResult | dict[str, Any]], out_dir: str | Path) -> Path:
    """Write ``out_dir/index.html``: every input of the run with its verdict, linking each input's report.
    ``entries``: the results or their summaries, in input order; read twice (a list, or a ``SummarySpool``), one at
    a time, so the page of a run over many inputs is never held in memory whole."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(VERDICT_COLOURS, 0)
    warnings: set[str] = set()
    for entry in entries:
        summary = as_summary(entry)
        counts[summary["verdict"]] = counts.get(summary["verdict"], 0) + 1
        warnings.update(summary["warnings"])
    total = sum(counts.values())
    summary_line = ", ".join(f"{count} {verdict}" for verdict, count in counts.items() if count)
    inputs = f"{total} input{'' if total == 1 else 's'}"
    path = out_dir / "index.html"
    with atomic_open(path, "w") as handle:
        handle.write(_page_head(f"fakescope scan: {inputs}"))
        handle.write(
            f"<h1>fakescope scan: {inputs}</h1>\n<p class=\"muted\">{escape(summary_line)}</p>\n"
            + "".join(f'<div class="warning">&#9888; {escape(w)}</div>\n' for w in sorted(warnings))
            + "<section><table><thead><tr><th>input</th><th>verdict</th><th class=\"num\">p_fake</th>"
            "<th class=\"num\">frames with a face / analysed</th><th>reason</th></tr></thead>\n<tbody>"
        )
        for entry in entries:
            handle.write(_index_row(as_summary(entry), out_dir))
        handle.write("</tbody></table></section>\n" + PAGE_TAIL)
    return path


def _index_row(summary: dict[str, Any], out_dir: Path) -> str:
    name = escape(summary["input"])
    report = summary["outputs"].get("report")
    if isinstance(report, str) and Path(report).is_file():
        href = escape(Path(os.path.relpath(Path(report).resolve(), out_dir.resolve())).as_posix(), quote=True)
        name = f'<a href="{href}">{name}</a>'
    analysed = summary["frames_analysed"]
    frames = f"{summary['frames_with_faces']}/{analysed}" if analysed else ""
    return (f"<tr><td>{name}</td><td>{_pill(summary['verdict'])}</td>"
            f"<td class=\"num\">{_score(summary['p_fake'])}</td><td class=\"num\">{frames}</td>"
            f"<td>{escape(summary['reason'] or '')}</td></tr>\n")
