"""The evaluation report: metrics.json, metrics.md, roc.png and confusion.png."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, write_text
from .metrics import LEVEL_TITLES

LEVELS = ("frame_level", "video_level")
SAMPLE_NOUNS = {"frame_level": "faces", "video_level": "videos"}
LEVEL_COLOURS = {"frame_level": "#1f77b4", "video_level": "#d62728"}

# Per level: (labels, p_fake) of the scored samples, from which the ROC curves are drawn.
RocData = Mapping[str, tuple[Sequence[int], Sequence[float]]]

LEVELS_NOTE = (
    "**Frame-level** metrics score every analysed face crop on its own (one sample per face per analysed frame, "
    "labelled with its video's label): they say how well single frames are told apart. **Video-level** metrics "
    "score each video once, by its aggregated p_fake (the score behind its verdict): they say how often the "
    "verdict a user sees is right. Videos without a usable score (no face found, or the file failed) are left out "
    "of both levels and listed under *Not scored*."
)


def write_evaluation_report(
    metrics: Mapping[str, Any],
    out_dir: str | Path,
    roc_data: RocData,
    title: str,
    inputs: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the report files into ``out_dir``; returns their paths by name (json, markdown, roc, confusion).

    ``metrics`` is what ``evaluate_predictions`` returns (optionally with ``videos`` counts and
    ``not_scored_videos``); ``inputs`` describes what was evaluated (weights, data, frame selection ...).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = {"title": title, "inputs": dict(inputs or {}), **metrics}
    paths = {
        "json": _write_text(out / "metrics.json", json.dumps(document, indent=2, ensure_ascii=False, default=str)),
        "markdown": _write_text(out / "metrics.md", render_markdown(metrics, title, inputs or {})),
    }
    paths["roc"] = plot_roc(metrics, roc_data, out / "roc.png", title)
    paths["confusion"] = plot_confusion(metrics, out / "confusion.png", title)
    return paths


def _write_text(path: Path, text: str) -> Path:
    return write_text(path, text if text.endswith("\n") else text + "\n")


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _specificity(level: Mapping[str, Any]) -> float | None:
    confusion = level.get("confusion")
    if not confusion or confusion["tn"] + confusion["fp"] == 0:
        return None
    return confusion["tn"] / (confusion["tn"] + confusion["fp"])


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _overall_table(metrics: Mapping[str, Any]) -> list[str]:
    frame, video = metrics["frame_level"], metrics["video_level"]
    rows = [
        ["samples", f"{frame['n']} faces from {frame['n_videos']} videos", f"{video['n']} videos"],
        ["real / fake samples", f"{frame['n_real']} / {frame['n_fake']}", f"{video['n_real']} / {video['n_fake']}"],
    ]
    named = [
        ("ROC AUC", "auc"),
        ("average precision (fake)", "average_precision"),
        ("EER", "eer"),
        ("threshold at EER", "eer_threshold"),
        ("accuracy", "accuracy"),
        ("precision (fake)", "precision"),
        ("recall: fakes caught", "recall"),
        ("F1 (fake)", "f1"),
        ("log loss", "log_loss"),
    ]
    for name, key in named:
        rows.append([name, _number(frame[key]), _number(video[key])])
        if key == "recall":
            rows.append(["specificity: reals passed", _number(_specificity(frame)), _number(_specificity(video))])
    return _table(["metric", "frame-level", "video-level"], rows)


def _confusion_table(level: Mapping[str, Any]) -> list[str]:
    confusion = level.get("confusion")
    if not confusion:
        return ["no samples"]

    def cell(count: int, row_total: int) -> str:
        return f"{count} ({100.0 * count / row_total:.1f}%)" if row_total else str(count)

    reals, fakes = confusion["tn"] + confusion["fp"], confusion["fn"] + confusion["tp"]
    return _table(
        ["actual \\ predicted", "real", "fake"],
        [
            ["real", cell(confusion["tn"], reals), cell(confusion["fp"], reals)],
            ["fake", cell(confusion["fn"], fakes), cell(confusion["tp"], fakes)],
        ],
    )


def _breakdown_table(metrics: Mapping[str, Any], section: str) -> list[str]:
    frame, video = metrics["frame_level"], metrics["video_level"]
    names = sorted(set(frame[section]) | set(video[section]))
    if not names:
        return ["none"]
    header = [
        "method" if section == "by_method" else "dataset",
        "video-level n (real/fake)", "video-level AUC", "video-level accuracy", "video-level recall",
        "frame-level n (real/fake)", "frame-level AUC", "frame-level accuracy",
    ]
    rows = []
    for name in names:
        row = [name]
        for level, keys in ((video, ("auc", "accuracy", "recall")), (frame, ("auc", "accuracy"))):
            part = level[section].get(name)
            if part is None:
                row += ["0"] + ["–"] * len(keys)
                continue
            row.append(f"{part['n']} ({part['n_real']}/{part['n_fake']})")
            row += [_number(part[key]) for key in keys]
        rows.append(row)
    return _table(header, rows)


def render_markdown(metrics: Mapping[str, Any], title: str, inputs: Mapping[str, Any]) -> str:
    """The human-readable report."""
    lines = [f"# {title}", ""]
    if inputs:
        lines += ["## Inputs", ""]
        for name, value in inputs.items():
            shown = json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, (list, dict)) else value
            lines.append(f"- **{name}**: {shown}")
        lines.append("")
    threshold = metrics.get("threshold")
    lines += [
        "## Frame-level and video-level",
        "",
        LEVELS_NOTE,
        "",
        f"A sample is called fake when its p_fake is at or above the threshold ({_number(threshold)}); fake is the "
        "positive class. AUC, average precision and EER do not depend on the threshold.",
        "",
    ]
    videos = metrics.get("videos")
    if videos:
        lines += [
            f"Videos: {videos['total']} in all, {videos['scored']} scored, {videos['not_scored']} not scored "
            f"({videos['no_face']} without a face, {videos['failed']} failed).",
            "",
        ]
    lines += ["## Overall", ""] + _overall_table(metrics) + [""]
    for level in LEVELS:
        notes = metrics[level].get("notes") or []
        lines += [f"- {LEVEL_TITLES[level]}: {note}" for note in notes]
    lines += ["", "## Confusion matrices", "", "Rows are the true labels; percentages are of each row.", ""]
    for level in LEVELS:
        lines += [f"### {LEVEL_TITLES[level]} ({SAMPLE_NOUNS[level]})", ""]
        lines += _confusion_table(metrics[level]) + [""]
    lines += [
        "## Per manipulation method",
        "",
        f"Each row is {metrics['video_level']['by_method_rule']}. Recall is the share of the method's fakes caught.",
        "",
    ]
    lines += _breakdown_table(metrics, "by_method") + [""]
    lines += ["## Per dataset", ""] + _breakdown_table(metrics, "by_dataset") + [""]
    not_scored = metrics.get("not_scored_videos") or []
    if not_scored:
        lines += ["## Not scored", ""]
        lines += _table(
            ["video", "dataset", "verdict", "reason"],
            [[str(v["key"]), str(v["dataset"]), str(v["verdict"]), str(v.get("reason") or "")] for v in not_scored],
        )
        lines.append("")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(metrics: Mapping[str, Any], roc_data: RocData, path: Path, title: str) -> Path:
    """Video-level and frame-level ROC curves on one plot, with AUC and EER in the legend and each level's
    operating point at the threshold."""
    from sklearn.metrics import roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 6.0), dpi=110)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance (AUC 0.5)")
    for level in ("video_level", "frame_level"):
        level_metrics = metrics[level]
        labels, scores = roc_data.get(level, ((), ()))
        labels, scores = np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)
        name = f"{LEVEL_TITLES[level]} ({len(labels)} {SAMPLE_NOUNS[level]})"
        if labels.size == 0 or labels.min() == labels.max():
            ax.plot([], [], color=LEVEL_COLOURS[level], label=f"{name}: no ROC (needs reals and fakes)")
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        auc, eer = level_metrics.get("auc"), level_metrics.get("eer")
        label = f"{name}: AUC {_number(auc)}, EER {_number(eer)}"
        on_top = level == "video_level"
        ax.plot(fpr, tpr, color=LEVEL_COLOURS[level], lw=2.2 if on_top else 1.6, zorder=3 if on_top else 2, label=label)
        confusion = level_metrics.get("confusion")
        if confusion:
            point_fpr = confusion["fp"] / max(confusion["fp"] + confusion["tn"], 1)
            point_tpr = confusion["tp"] / max(confusion["tp"] + confusion["fn"], 1)
            ax.plot(point_fpr, point_tpr, "o", color=LEVEL_COLOURS[level], ms=7, mec="black", zorder=4)
    threshold = _number(metrics.get("threshold"), 2)
    ax.plot([], [], "o", color="white", mec="black", label=f"operating point at threshold {threshold}")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (reals called fake)")
    ax.set_ylabel("true positive rate (fakes caught)")
    ax.set_title(f"{title}\nROC curves", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as temporary:
        fig.savefig(temporary)
    plt.close(fig)
    return path


def plot_confusion(metrics: Mapping[str, Any], path: Path, title: str) -> Path:
    """Frame-level and video-level confusion matrices side by side: counts and row-normalised percentages."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.6), dpi=110)
    for ax, level in zip(axes, LEVELS):
        level_metrics = metrics[level]
        ax.set_title(
            f"{LEVEL_TITLES[level]} ({SAMPLE_NOUNS[level]}), n = {level_metrics['n']}", fontsize=10
        )
        confusion = level_metrics.get("confusion")
        if not confusion:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", fontsize=12, transform=ax.transAxes)
            ax.set_axis_off()
            continue
        counts = np.asarray(confusion["matrix"], dtype=float)
        totals = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for row in range(2):
            for column in range(2):
                share = shares[row, column]
                text = f"{int(counts[row, column])}\n{100.0 * share:.1f}%" if totals[row, 0] else "0"
                ax.text(column, row, text, ha="center", va="center", fontsize=13,
                        color="white" if share > 0.55 else "black")
        ax.set_xticks([0, 1], ["real", "fake"])
        ax.set_yticks([0, 1], ["real", "fake"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
    fig.suptitle(
        f"{title}\nconfusion matrices at threshold {_number(metrics.get('threshold'), 2)} (percent of each actual row)",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_path(path) as temporary:
        fig.savefig(temporary)
    plt.close(fig)
    return path

