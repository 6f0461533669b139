"""report.html per input and index.html per run: self-contained, escaped, complete."""
from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from clips import make_bad_inputs, make_clip
from fakescope.cli.main import main
from fakescope.analysis import Scanner
from fakescope.options import OutputOptions
from fakescope.outputs import scan_to_folder
from fakescope.outputs.html_pages import render_input_page, write_run_index
from fakescope.results import ScanResult
from fakescope.video import FrameSelection


class _Collector(HTMLParser):
    """Collects every tag's attributes and the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Collector:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    return parser


def _assert_self_contained(parser: _Collector) -> None:
    for tag, attrs in parser.tags:
        assert tag not in ("script", "link", "iframe"), tag
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is not None:
                assert not re.match(r"^(https?:)?//", value), (tag, value)
                if name == "src":
                    assert value.startswith("data:"), value


def _decoded_images(parser: _Collector) -> list[np.ndarray]:
    images = []
    for tag, attrs in parser.tags:
        if tag == "img":
            header, payload = attrs["src"].split(",", 1)
            assert header in ("data:image/png;base64", "data:image/jpeg;base64")
            image = cv2.imdecode(np.frombuffer(base64.b64decode(payload), np.uint8), cv2.IMREAD_COLOR)
            assert image is not None and image.size > 0
            images.append(image)
    return images


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "face.mp4", n_frames=10, size=(400, 300))


@pytest.mark.parametrize("heatmap", [False, True])
def test_input_report_is_self_contained_and_complete(tiny_weights, face_clip, tmp_path, heatmap):
    detector = Scanner.load(tiny_weights, device="cpu", allow_untrained=True,
                            selection=FrameSelection.from_options(every=2))
    result = scan_to_folder(detector, face_clip, tmp_path, OutputOptions(heatmap=heatmap))
    path = tmp_path / "report.html"
    assert result.outputs["report"] == str(path)
    html = path.read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html
    parser = _parse(html)
    _assert_self_contained(parser)
    text = " ".join(parser.text)
    assert result.verdict.upper() in text and f"{result.p_fake:.3f}" in text
    assert "UNTRAINED MODEL" in text and detector.meta.sha256 in text and "max_track" in text
    images = _decoded_images(parser)
    # The trend plot and, per highlight (3 for the one track), the face, plus its heatmap with --heatmap.
    assert len(images) == 1 + 3 * (2 if heatmap else 1)
    assert max(images[1].shape[:2]) == 200
    assert path.stat().st_size < 400_000
    links = [attrs["href"] for tag, attrs in parser.tags if tag == "a"]
    assert "annotated.mp4" in links and "summary.json" in links
    assert ("heatmap.mp4" in links) == heatmap
    assert all((tmp_path / link).is_file() for link in links)


def test_report_escapes_text(tmp_path):
    result = ScanResult(input="<script>alert(1)</script>.mp4", verdict="error", reason="bad & <b>broken</b>",
                        warnings=["<img src=x onerror=alert(1)>"], model={"name": "<i>m</i>"})
    html = render_input_page(result, folder=tmp_path)
    parser = _parse(html)
    assert not any(tag in ("script", "img", "i") for tag, _ in parser.tags)
    text = " ".join(parser.text)
    assert "<script>alert(1)</script>.mp4" in text and "bad & <b>broken</b>" in text and "<i>m</i>" in text


@pytest.mark.slow  # end to end on generated video (a second or more on a loaded machine)
def test_no_report_option_skips_it(tiny_weights, face_clip, tmp_path):
    detector = Scanner.load(tiny_weights, device="cpu", allow_untrained=True)
    result = scan_to_folder(detector, face_clip, tmp_path, OutputOptions(report=False, annotate=False))
    assert "report" not in result.outputs and not (tmp_path / "report.html").exists()


@pytest.mark.slow  # a directory of inputs through the CLI
def test_index_lists_every_input_with_its_report(tiny_weights, face_clip, tmp_path):
    inputs = tmp_path / "inputs"
    bad = make_bad_inputs(inputs / "bad")
    good = make_clip(inputs / "good.mp4", n_frames=6, size=(320, 240))
    out = tmp_path / "out"
    code = main(["scan", str(inputs), str(tmp_path / "missing.mp4"), "--weights", str(tiny_weights),
                 "--allow-untrained", "--out", str(out), "--quiet", "--no-video", "--frames", "3"])
    assert code == 1
    html = (out / "index.html").read_text(encoding="utf-8")
    parser = _parse(html)
    _assert_self_contained(parser)
    text = " ".join(parser.text)
    for path in [*bad.values(), good, tmp_path / "missing.mp4"]:
        assert str(path) in text
    assert "no such file" in text and "ERROR" in text and "NO_FACE" in text
    links = [attrs["href"] for tag, attrs in parser.tags if tag == "a"]
    assert "inputs/good.mp4/report.html" in links
    for link in links:
        assert (out / link).is_file()


def test_index_without_results_dir(tmp_path):
    results = [ScanResult(input="a.mp4", verdict="fake", p_fake=0.91),
               ScanResult(input="b.mp4", verdict="error", reason="not a readable video")]
    parser = _parse(write_run_index(results, tmp_path).read_text(encoding="utf-8"))
    text = " ".join(parser.text)
    assert "a.mp4" in text and "0.910" in text and "not a readable video" in text
    assert not any(tag == "a" for tag, _ in parser.tags)  # no report written, so nothing to link
