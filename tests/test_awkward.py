"""Regression tests of issue 15: every awkward input, output path and terminal handled cleanly.

One test (or a few) per failure the issue lists, in its order, then full disks and removed output folders,
streaming discovery and the run's progress display.
"""
from __future__ import annotations

import functools
import http.server
import io
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from awkward import corrupt_middle, write_audio, write_video
from clips import make_clip, make_image
from fakescope.cli.main import main
from fakescope.outputs import tables as outputs_module
from fakescope.results import FaceRecord, FrameRecord
from fakescope.names import printable
from fakescope.video import MediaError, MediaReader, iter_media, probe

REPO = Path(__file__).resolve().parents[1]
NOISE = re.compile(r"Traceback|Premature end|libpng|Corrupt JPEG|\[ERROR|\[h264|\[mpeg|Glyph|UserWarning|"
                   r"RuntimeWarning|Invalid NAL|moov atom not found|\r")


def scan(tiny_weights: Path, out: Path, *paths: object, extra: tuple[str, ...] = ()) -> int:
    return main(["scan", *(str(p) for p in paths), "--weights", str(tiny_weights), "--allow-untrained",
                 "--out", str(out), *extra])


def report_by_name(out: Path) -> dict[str, dict]:
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return {Path(result["input"]).name: result for result in report["results"]}


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("good") / "good.mp4", n_frames=6, size=(320, 240))


def assert_quiet(stderr: str) -> None:
    """Nothing on standard error but fakescope's own untrained-model warning."""
    lines = [line for line in stderr.splitlines() if line and not line.startswith("WARNING: untrained model")]
    assert not lines, lines
    assert not NOISE.search(stderr), stderr


# --- 1. --out at an existing file or on a read-only file system -------------------------------------------------


def test_out_at_an_existing_file_is_a_usage_error_before_any_work(tiny_weights, small_clip, tmp_path, capfd):
    in_the_way = tmp_path / "results"
    in_the_way.write_text("an existing file")
    assert scan(tiny_weights, in_the_way, small_clip) == 2
    captured = capfd.readouterr()
    assert "--out" in captured.err and "exists and is not a directory" in captured.err
    assert "Traceback" not in captured.err + captured.out and "good.mp4" not in captured.out  # nothing scanned
    assert in_the_way.read_text() == "an existing file"


def test_out_below_a_file_is_a_usage_error(tiny_weights, small_clip, tmp_path, capfd):
    (tmp_path / "file").write_text("x")
    assert scan(tiny_weights, tmp_path / "file" / "results", small_clip) == 2
    assert "cannot create the output directory" in capfd.readouterr().err


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only tmpfs mount (needs root and mount rights; skipped elsewhere)."""
    target = tmp_path / "ro"
    target.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    yield target
    subprocess.run(["umount", str(target)], check=False)


def test_out_on_a_read_only_file_system_is_a_usage_error(tiny_weights, small_clip, read_only_dir, capfd):
    assert scan(tiny_weights, read_only_dir, small_clip) == 2
    err = capfd.readouterr().err
    assert "cannot write there: Read-only file system" in err and "Traceback" not in err
    assert scan(tiny_weights, read_only_dir / "sub", small_clip) == 2
    assert "Read-only file system" in capfd.readouterr().err


# --- 2. truncated images -----------------------------------------------------------------------------------------


@pytest.mark.slow  # CLI scans
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_truncated_image_is_an_error_without_decoder_noise(tiny_weights, small_clip, tmp_path, capfd, suffix):
    whole = make_image(tmp_path / f"whole{suffix}", size=256).read_bytes()
    half = tmp_path / "in" / f"half{suffix}"
    half.parent.mkdir()
    half.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(MediaError, match="truncated image"):
        probe(half)
    capfd.readouterr()
    assert scan(tiny_weights, tmp_path / "out", half, small_clip, extra=("--quiet",)) == 1
    captured = capfd.readouterr()
    assert_quiet(captured.err)
    by_name = report_by_name(tmp_path / "out")
    assert by_name[half.name]["verdict"] == "error" and "truncated image" in by_name[half.name]["reason"]
    assert by_name[half.name]["p_fake"] is None  # the grey-filled image is not scored
    assert f"half{suffix}: ERROR: truncated image" in captured.out
    assert by_name["good.mp4"]["verdict"] in ("real", "fake")


def test_a_complete_image_with_repaired_damage_is_scanned_with_a_warning(tmp_path, capfd):
    """Bytes flipped inside a JPEG's data: libjpeg repairs it and says so; the note becomes a warning."""
    data = bytearray(make_image(tmp_path / "face.jpg", size=256).read_bytes())
    start = data.index(b"\xff\xda") + 200  # inside the entropy-coded data, after the start-of-scan header
    data[start:start + 3] = b"\x12\x34\x56"
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(bytes(data))
    with MediaReader(damaged) as reader:
        frames = list(reader)
    assert len(frames) == 1 and reader.decode_error is None
    assert reader.warnings and "Corrupt JPEG data" in reader.warnings[0]
    assert not NOISE.search(capfd.readouterr().err)


# --- 3. dangling symbolic links and loops in a scanned directory ---------------------------------------------


@pytest.mark.slow  # CLI scans beside a good clip
def test_dangling_links_and_loops_are_reported(tiny_weights, small_clip, tmp_path, capfd):
    folder = tmp_path / "archive"
    folder.mkdir()
    shutil.copy(small_clip, folder / "good.mp4")
    os.symlink("/nonexistent/moved.mp4", folder / "moved.mp4")
    os.symlink("itself", folder / "itself")
    os.symlink("..", folder / "parent")
    (folder / "sub").mkdir()
    os.symlink(str(folder), folder / "sub" / "back")
    assert scan(tiny_weights, tmp_path / "out", folder, extra=("--quiet", "--no-video")) == 1
    captured = capfd.readouterr()
    by_name = report_by_name(tmp_path / "out")
    assert by_name["moved.mp4"]["verdict"] == "error"
    assert "dangling symbolic link: its target /nonexistent/moved.mp4 does not exist" in by_name["moved.mp4"]["reason"]
    assert by_name["itself"]["reason"].startswith("symbolic link loop")
    assert by_name["parent"]["reason"].startswith("symbolic link loop")
    assert by_name["back"]["reason"].startswith("symbolic link loop")
    assert by_name["good.mp4"]["verdict"] in ("real", "fake")
    assert "moved.mp4: ERROR: dangling symbolic link" in captured.out
    assert_quiet(captured.err)


def test_links_to_other_folders_are_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    make_image(elsewhere / "face.jpg", size=64)
    scanned = tmp_path / "scanned"
    scanned.mkdir()
    os.symlink(elsewhere, scanned / "linked")
    inputs = list(iter_media([scanned]))
    assert [(item.output_name.as_posix(), item.error) for item in inputs] == [("scanned/linked/face.jpg", None)]


# --- 4. media recognised by content ---------------------------------------------------------------------------


@pytest.mark.slow  # scans several containers
def test_gif_heic_mpg_are_scanned_and_audio_is_listed_as_skipped(tiny_weights, tmp_path, capfd):
    folder = tmp_path / "mixed"
    write_video(folder / "anim.gif", "gif", pix_fmt="rgb8", n_frames=4)
    write_video(folder / "grid.mpg", "mpeg1video", container_format="mpeg", n_frames=4)
    write_video(folder / "old.flv", "flv", n_frames=4)
    write_video(folder / "phone.3gp", "h263", size=(352, 288), n_frames=4)
    write_video(folder / "office.wmv", "wmv2", container_format="asf", n_frames=4)
    write_audio(folder / "voice.m4a", "aac", container_format="ipod")
    (folder / "notes.txt").write_text("not media\n")
    pillow_heif = pytest.importorskip("pillow_heif")
    from PIL import Image

    pillow_heif.register_heif_opener()
    Image.open(make_image(tmp_path / "face.png", size=256)).save(folder / "photo.heic")
    assert scan(tiny_weights, tmp_path / "out", folder, extra=("--quiet", "--no-video")) == 0
    captured = capfd.readouterr()
    by_name = report_by_name(tmp_path / "out")
    for name in ("anim.gif", "grid.mpg", "old.flv", "phone.3gp", "office.wmv", "photo.heic"):
        assert by_name[name]["verdict"] in ("real", "fake"), by_name[name]
        assert by_name[name]["frames_analysed"] == (1 if name.endswith(".heic") else 4)
    assert by_name["voice.m4a"]["verdict"] == "skipped" and "audio only" in by_name["voice.m4a"]["reason"]
    assert by_name["notes.txt"]["verdict"] == "skipped" and "text" in by_name["notes.txt"]["reason"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["skipped"] == 2 and report["scanned"] == 6 and report["failed"] == 0
    assert "6 of 6 inputs scanned; 2 files skipped" in captured.out
    assert "voice.m4a: SKIPPED (MPEG-4 audio, audio only" in captured.out


# --- 5. corrupt data in the middle of a video --------------------------------------------------------------


@pytest.fixture(scope="module")
def corrupt_390(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("corrupt")
    clean = write_video(folder / "clean.mp4", "libx264", size=(320, 240), n_frames=390)
    return clean, corrupt_middle(clean, folder / "corrupt.mp4", size=4096)


@pytest.mark.slow  # decodes damaged videos
def test_decoding_skips_past_corrupt_data_and_counts_the_frames_lost(corrupt_390):
    _, corrupt = corrupt_390
    with MediaReader(corrupt) as reader:
        indices = [frame.index for frame in reader]
    assert reader.decode_error is None
    assert len(indices) >= 370 and reader.frames_lost >= 1
    assert indices == sorted(set(indices)) and indices[-1] >= 385  # the timeline keeps its place after the gap
    assert len(indices) + reader.frames_lost >= 385
    assert any("could not be decoded and were skipped" in warning for warning in reader.warnings)


@pytest.mark.slow  # end to end on generated video (a second or more on a loaded machine)
def test_a_video_with_corrupt_data_gets_a_verdict_with_a_warning(tiny_weights, corrupt_390, tmp_path, capfd):
    clean, corrupt = corrupt_390
    assert scan(tiny_weights, tmp_path / "out", corrupt, extra=("--quiet", "--no-video", "--every", "10")) == 0
    captured = capfd.readouterr()
    summary = json.loads((tmp_path / "out" / "corrupt.mp4" / "summary.json").read_text())
    assert summary["verdict"] in ("real", "fake")
    assert summary["media"]["frames_lost"] >= 1
    assert any("could not be decoded" in warning for warning in summary["warnings"])
    assert "could not be decoded" in captured.out
    assert_quiet(captured.err)
    with MediaReader(clean) as reader:  # the clean clip: nothing lost, no warning
        assert len(list(reader)) == 390 and reader.frames_lost == 0 and reader.warnings == []


def test_a_mostly_corrupt_video_gets_no_verdict(tmp_path):
    clean = write_video(tmp_path / "clean.mp4", "libx264", size=(320, 240), n_frames=60)
    data = bytearray(clean.read_bytes())
    start = data.index(b"mdat") + 2000
    for position in range(start, len(data) - 2000, 7):
        data[position] ^= 0x5A
    (tmp_path / "wrecked.mp4").write_bytes(bytes(data))
    with MediaReader(tmp_path / "wrecked.mp4") as reader:
        list(reader)
    assert reader.decode_error is not None
    assert "too damaged" in reader.decode_error or "truncated or corrupt" in reader.decode_error


# --- 6. URLs ---------------------------------------------------------------------------------------------------


@pytest.fixture
def http_server(tmp_path, small_clip):
    """A loopback HTTP server in a thread, serving a folder with the generated clip."""
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(small_clip, served / "clip.mp4")
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_scan_reads_an_http_url(tiny_weights, http_server, tmp_path, capfd):
    url = f"{http_server}/clip.mp4"
    assert scan(tiny_weights, tmp_path / "out", url, extra=("--quiet",)) == 0
    captured = capfd.readouterr()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    result = report["results"][0]
    assert result["input"] == url  # not mangled into http:/...
    assert result["verdict"] in ("real", "fake") and result["frames_analysed"] == 6
    assert (tmp_path / "out" / "clip.mp4" / "annotated.mp4").is_file()
    assert f"{url}: " in captured.out
    assert_quiet(captured.err)


def test_an_unreachable_url_fails_quickly_with_the_reason(tiny_weights, small_clip, tmp_path, capfd):
    with socket.socket() as probe_socket:  # a port nothing listens on
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    url = f"http://127.0.0.1:{port}/clip.mp4"
    started = time.monotonic()
    assert scan(tiny_weights, tmp_path / "out", url, small_clip, extra=("--quiet", "--no-video")) == 1
    assert time.monotonic() - started < 30
    captured = capfd.readouterr()
    by_input = {r["input"]: r for r in json.loads((tmp_path / "out" / "report.json").read_text())["results"]}
    assert by_input[url]["verdict"] == "error"
    assert by_input[url]["reason"].startswith("cannot open the URL") and "refused" in by_input[url]["reason"].lower()
    assert by_input[str(small_clip)]["verdict"] in ("real", "fake")
    assert_quiet(captured.err)


@pytest.mark.slow  # CLI scans beside a good clip
def test_an_unknown_scheme_is_not_taken_for_a_file(tiny_weights, small_clip, tmp_path, capfd):
    assert scan(tiny_weights, tmp_path / "out", "gopher://example/clip.mp4", small_clip, extra=("--quiet",)) == 1
    assert "unsupported URL scheme 'gopher'" in capfd.readouterr().out


# --- 7. names with newlines and other scripts; plots never warn -------------------------------------------


@pytest.mark.slow  # CLI scans
def test_awkward_names_stay_on_one_escaped_line(tiny_weights, tmp_path, capfd):
    folder = tmp_path / "names"
    make_image(folder / "two\nlines.jpg", size=256)
    make_image(folder / "写真 фото.jpg", size=256)
    make_image(folder / "tab\tbell\x07.jpg", size=256)
    make_clip(folder / "видео 動画.mp4", n_frames=4, size=(320, 240))
    undecodable = os.fsencode(str(folder)) + b"/caf\xe9.jpg"
    with open(undecodable, "wb") as handle:
        handle.write((folder / "two\nlines.jpg").read_bytes())
    assert scan(tiny_weights, tmp_path / "out", folder, extra=("--quiet",)) == 0
    captured = capfd.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 5 + 1  # one per input, then the summary
    for shown in ("two\\nlines.jpg: ", "写真 фото.jpg: ", "tab\\tbell\\x07.jpg: ", "видео 動画.mp4: ",
                  "caf\\xe9.jpg: "):
        assert sum(shown in line for line in lines) == 1, (shown, lines)
    assert_quiet(captured.err)
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["scanned"] == 5
    assert (tmp_path / "out" / "names" / "two%0Alines.jpg" / "summary.json").is_file()


def test_names_print_escaped_on_an_ascii_terminal(tiny_weights, tmp_path, monkeypatch):
    """LANG=C or a legacy code page: a name the terminal cannot encode is escaped, never a UnicodeEncodeError."""
    image = make_image(tmp_path / "写真.jpg", size=128)
    terminal = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(terminal, encoding="ascii", errors="strict"))
    assert scan(tiny_weights, tmp_path / "out", image, extra=("--no-video", "--quiet")) == 0
    sys.stdout.flush()
    assert "\\u5199\\u771f.jpg: " in terminal.getvalue().decode("ascii")


def test_printable_escapes_only_what_cannot_be_shown():
    assert printable("a\nb\r\t.mp4") == "a\\nb\\r\\t.mp4"
    assert printable("Пример 例子 مثال") == "Пример 例子 مثال"
    assert printable("x\x1b[31m") == "x\\x1b[31m"
    assert printable(os.fsdecode(b"caf\xe9")) == "caf\\xe9"
    assert printable("line\u2028sep") == "line\\u2028sep"


def test_trend_plot_of_a_non_latin_name_does_not_warn(tmp_path):
    from fakescope.outputs.plots import plot_trend

    frames = [FrameRecord(i, i / 25, [FaceRecord(i, i / 25, 0, (10, 10, 50, 50), 0.9, 0.3)]) for i in range(5)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = plot_trend(frames, 0.5, tmp_path / "trend.png", title="写真 صورة 🎞 two\\nlines")
    assert path.is_file() and not list(tmp_path.glob(".*partial*"))


# --- 8. progress off a terminal ---------------------------------------------------------------------------


@pytest.mark.slow  # several CLI scans
def test_off_a_terminal_progress_is_occasional_lines_and_none_with_quiet(tiny_weights, small_clip, tmp_path, capfd,
                                                                         monkeypatch):
    monkeypatch.setenv("FAKESCOPE_PROGRESS_INTERVAL", "0")  # every update, to see them at all in a short test
    assert scan(tiny_weights, tmp_path / "a", small_clip, small_clip, extra=("--no-video",)) == 0
    err = capfd.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if not line.startswith("WARNING")]
    assert any(re.fullmatch(r"\[1\] good\.mp4: analyse: \d+/6 frames \(\d+%\)", line) for line in lines), lines
    assert any(re.fullmatch(r"fakescope scan: 2 inputs", line) for line in lines), lines

    assert scan(tiny_weights, tmp_path / "b", small_clip, extra=("--no-video", "--quiet")) == 0
    assert_quiet(capfd.readouterr().err)

    monkeypatch.setenv("FAKESCOPE_PROGRESS_INTERVAL", "3600")  # the default is long: a short scan prints none
    assert scan(tiny_weights, tmp_path / "c", small_clip, extra=("--no-video",)) == 0
    assert_quiet(capfd.readouterr().err)


def test_quiet_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    assert "--quiet" in readme
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    first_command = quick_start.index("make scan")
    assert "../shared" in quick_start[:first_command]  # said before the first command
    assert re.search(r"make scan VIDEO=(?!\.\./shared)\S+", quick_start)  # the same on the user's own video


# --- Also: full disk, output folder removed mid-run --------------------------------------------------------


def _no_partial_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if ".partial" in path.name or path.name.endswith(".tmp")]


@pytest.fixture
def tiny_tmpfs(tmp_path):
    target = tmp_path / "full"
    target.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a 1 MB tmpfs here (needs root); test_output_file_size_limit covers the same path")
    yield target
    subprocess.run(["umount", str(target)], check=False)


@pytest.mark.slow  # end to end on generated video (a second or more on a loaded machine)
def test_a_full_disk_fails_the_input_with_the_reason_and_the_others_go_on(tiny_weights, tiny_tmpfs, tmp_path, capfd):
    inputs = tmp_path / "in"
    make_clip(inputs / "a_big.mp4", n_frames=50, size=(1280, 720))  # its annotated video does not fit in 1 MB
    make_image(inputs / "b_small.jpg", size=200)
    assert scan(tiny_weights, tiny_tmpfs, inputs, extra=("--quiet", "--no-report", "--every", "5")) == 1
    captured = capfd.readouterr()
    by_name = report_by_name(tiny_tmpfs)
    assert by_name["a_big.mp4"]["verdict"] == "error"
    assert "No space left on device" in by_name["a_big.mp4"]["reason"]
    assert by_name["b_small.jpg"]["verdict"] in ("real", "fake")
    assert not (tiny_tmpfs / "in" / "a_big.mp4" / "annotated.mp4").exists()
    assert _no_partial_files(tiny_tmpfs) == []
    assert "a_big.mp4: ERROR: could not write the outputs" in captured.out
    assert_quiet(captured.err)


@pytest.mark.slow  # the CLI in a subprocess
def test_output_file_size_limit_is_reported_like_a_full_disk(tiny_weights, tmp_path):
    """RLIMIT_FSIZE makes every write past 600 KB fail (EFBIG) in a real CLI process: the same path as ENOSPC,
    where mounting a small file system is not allowed."""
    inputs = tmp_path / "in"
    make_clip(inputs / "a_big.mp4", n_frames=50, size=(1280, 720))
    make_image(inputs / "b_small.jpg", size=200)
    out = tmp_path / "out"

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, 600_000))

    script = Path(sys.executable).with_name("fakescope")
    run = subprocess.run([str(script), "scan", str(inputs), "--weights", str(tiny_weights), "--allow-untrained",
                          "--out", str(out), "--quiet", "--every", "5"], capture_output=True, text=True,
                         preexec_fn=limit_file_size)
    assert run.returncode == 1, run.stderr
    by_name = report_by_name(out)
    assert by_name["a_big.mp4"]["verdict"] == "error" and "File too large" in by_name["a_big.mp4"]["reason"]
    assert by_name["b_small.jpg"]["verdict"] in ("real", "fake")
    assert _no_partial_files(out) == []
    assert_quiet(run.stderr)


@pytest.mark.slow  # end to end on generated video (a second or more on a loaded machine)
def test_an_output_folder_removed_mid_run_fails_that_input_only(tiny_weights, small_clip, tmp_path, capfd,
                                                               monkeypatch):
    original = outputs_module.write_predictions_csv
    removed: list[Path] = []

    def remove_then_write(result, path):
        if not removed:
            shutil.rmtree(path.parent)  # as if someone deleted the input's folder while it was being written
            removed.append(path.parent)
        return original(result, path)

    monkeypatch.setattr("fakescope.outputs.saving.write_predictions_csv", remove_then_write)
    second = make_image(tmp_path / "second.jpg", size=200)
    assert scan(tiny_weights, tmp_path / "out", small_clip, second, extra=("--quiet",)) == 1
    by_name = report_by_name(tmp_path / "out")
    assert by_name["good.mp4"]["verdict"] == "error"
    assert "No such file or directory" in by_name["good.mp4"]["reason"]
    assert by_name["second.jpg"]["verdict"] in ("real", "fake")
    assert (tmp_path / "out" / "second.jpg" / "summary.json").is_file()
    assert_quiet(capfd.readouterr().err)


@pytest.mark.slow  # a CLI scan
def test_the_run_report_failing_is_reported_without_a_traceback(tiny_weights, small_clip, tmp_path, capfd,
                                                                monkeypatch):
    def full_disk(results, out_dir):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs_module, "write_run_tables", full_disk)
    assert scan(tiny_weights, tmp_path / "out", small_clip, extra=("--quiet", "--no-video")) == 1
    captured = capfd.readouterr()
    assert "the run report could not be written" in captured.out and "No space left on device" in captured.out
    assert "Traceback" not in captured.err


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    from fakescope.atomic import atomic_open, write_text

    target = tmp_path / "summary.json"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [target]


# --- Also: streaming discovery ---------------------------------------------------------------------------


DISCOVERY_PROBE = """
import sys, tracemalloc
from fakescope.video import iter_media
stream = iter_media([sys.argv[1]])
first = next(stream)
tracemalloc.start()
count, peak_after_1000 = 1, 0
for item in stream:
    count += 1
    assert item.error is None and item.skipped is None, item
    if count == 1000:
        peak_after_1000 = tracemalloc.get_traced_memory()[1]
print(first.output_name.as_posix(), count, peak_after_1000, tracemalloc.get_traced_memory()[1])
"""


@pytest.mark.slow  # 10,000 files
def test_discovery_streams_a_directory_of_10000_files_with_flat_memory(tmp_path):
    root = tmp_path / "many"
    jpeg = make_image(tmp_path / "tiny.jpg", size=16).read_bytes()
    for folder in range(100):
        sub = root / f"day{folder:03d}"
        sub.mkdir(parents=True)
        for index in range(100):
            (sub / f"img{index:03d}.jpg").write_bytes(jpeg)
    # A fresh interpreter, so that nothing else allocates while memory is traced.
    run = subprocess.run([sys.executable, "-c", DISCOVERY_PROBE, str(root)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, check=True)
    first, count, peak_after_1000, peak = run.stdout.split()
    assert first == "many/day000/img000.jpg" and int(count) == 10_000
    # Only one folder's names and the run's unique output names are held (about 130 bytes a file): no list of
    # everything first.
    assert int(peak) < 3_000_000, (peak_after_1000, peak)
    assert int(peak) - int(peak_after_1000) < 2_000_000, (peak_after_1000, peak)


def test_names_differing_only_in_case_get_separate_output_folders(tmp_path):
    for name in ("Face.jpg", "face.jpg", "FACE"):
        make_image(tmp_path / "in" / name, size=32) if name != "FACE" else make_image(tmp_path / "in" / name / "x.jpg",
                                                                                     size=32)
    outputs = [item.output_name.as_posix() for item in iter_media([tmp_path / "in"])]
    assert outputs == ["in/FACE/x.jpg", "in/Face.jpg", "in/face-2.jpg"]


@pytest.mark.parametrize("count", [0, 1, 3])
def test_report_json_is_written_one_summary_at_a_time_but_reads_the_same(tmp_path, count):
    from fakescope.results import VERDICTS, ScanResult

    results = [ScanResult(input=f"clip{i}\n写真.mp4", verdict=("error", "real", "skipped")[i % 3], reason="why",
                          p_fake=None if i % 3 != 1 else 0.25, model={"name": "tiny", "config": {"a": [1, None]}},
                          warnings=["w"]) for i in range(count)]
    outputs_module.write_run_tables(results, tmp_path)
    expected = {
        "inputs": count, "scanned": sum(r.scanned for r in results), "failed": sum(not r.ok for r in results),
        "skipped": sum(r.verdict == "skipped" for r in results),
        "verdicts": {v: sum(r.verdict == v for r in results) for v in VERDICTS},
        "results": [r.to_summary() for r in results],
    }
    text = (tmp_path / "report.json").read_text(encoding="utf-8")
    assert text == json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
