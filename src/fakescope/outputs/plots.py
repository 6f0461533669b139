"""Plots of scan results."""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..atomic import atomic_path  # noqa: E402
from ..results import FrameRecord  # noqa: E402


@contextmanager
def quiet_fonts() -> Iterator[None]:
    """Silence matplotlib's font warnings ("Glyph ... missing from font(s)") while drawing: a file name in a script
    the font lacks is drawn with placeholder boxes, which is no reason to print anything on the terminal."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph.*missing", category=UserWarning)
        warnings.filterwarnings("ignore", message=r".*[Mm]atplotlib currently does not support", category=UserWarning)
        yield


def plot_trend(
    frames: list[FrameRecord],
    threshold: float,
    path: str | Path,
    title: str = "",
    max_tracks: int = 8,
) -> Path:
    """p_fake over time for each track (the longest ``max_tracks``), with the threshold and the fake zone shaded."""
    series: dict[int, tuple[list[float], list[float]]] = {}
    for frame in frames:
        for face in frame.faces:
            if face.p_fake is not None:
                times, scores = series.setdefault(face.track_id, ([], []))
                times.append(face.time_s)
                scores.append(face.p_fake)
    no_face_times = [frame.time_s for frame in frames if not frame.faces]
    longest = sorted(series, key=lambda track: -len(series[track][0]))[:max_tracks]

    with quiet_fonts():
        return _draw_trend(series, longest, no_face_times, threshold, Path(path), title)


def _draw_trend(
    series: dict[int, tuple[list[float], list[float]]],
    longest: list[int],
    no_face_times: list[float],
    threshold: float,
    path: Path,
    title: str,
) -> Path:
    fig, ax = plt.subplots(figsize=(10, 4), dpi=110)
    ax.axhspan(threshold, 1.0, color="#d62728", alpha=0.08, lw=0)
    ax.axhspan(0.0, threshold, color="#2ca02c", alpha=0.08, lw=0)
    ax.axhline(threshold, color="black", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    for track_id in sorted(longest):
        times, scores = series[track_id]
        style = "-" if len(times) > 1 else "o"
        ax.plot(times, scores, style, lw=1.6, ms=5, label=f"track {track_id} ({len(times)} frames)")
    if no_face_times:
        ax.plot(no_face_times, [-0.03] * len(no_face_times), "|", color="grey", ms=8, label="no face")
    ax.set_ylim(-0.06, 1.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("p(fake)")
    ax.text(0.005, 0.97, "FAKE", transform=ax.transAxes, color="#d62728", va="top", fontsize=9, weight="bold")
    ax.text(0.005, 0.03, "REAL", transform=ax.transAxes, color="#2ca02c", va="bottom", fontsize=9, weight="bold")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    try:
        fig.tight_layout()
        with atomic_path(path) as temporary:
            fig.savefig(temporary)
    finally:
        plt.close(fig)
    return path
