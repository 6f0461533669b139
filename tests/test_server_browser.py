"""The pages of ``fakescope serve`` in a real browser: Playwright driving Debian's Chromium (never a browser of
its own), against a real server process with the shipped weights and a shared FaceForensics++ clip."""
from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from server_helpers import CHROMIUM, CHROMIUM_ARGS, ServerProcess, fake_webcam_args, write_y4m


pytestmark = [pytest.mark.slow, pytest.mark.shared]


def _needed(condition: bool, reason: str) -> None:
    """Skip without ``condition``, except under CI=true, where the browser tests must run."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def playwright_api():
    _needed(CHROMIUM.is_file(), f"{CHROMIUM} is missing (apt-get install -y chromium; .ci/run installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _needed(False, "the playwright Python client is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    """Where the pages' screenshots go: $FAKESCOPE_SCREENSHOT_DIR (docs/screenshots for the README), else a
    temporary folder."""
    folder = Path(os.environ.get("FAKESCOPE_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, shared_dir: Path):
    data = tmp_path_factory.mktemp("serve") / "data"
    data.mkdir()
    with ServerProcess(data) as process:  # the shipped weights
        yield process


def test_upload_by_drag_and_drop_shows_the_verdict_and_plays_the_video(playwright_api, server, fake_video: Path,
                                                                       screenshots: Path) -> None:
    browser = playwright_api.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url + "/")
        page.click("summary")
        page.fill("input[name=frames]", "24")  # keep the scan short; the annotated video has every frame
        payload = base64.b64encode(fake_video.read_bytes()).decode()
        page.evaluate("""([name, payload]) => {
            const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "video/mp4" }));
            document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
        }""", [fake_video.name, payload])
        page.wait_for_selector("#progress:not(.hidden)", timeout=10_000)
        page.wait_for_url("**/jobs/*", timeout=180_000)
        verdict = page.wait_for_selector("#verdict [data-verdict]:not([data-verdict=''])", timeout=30_000)
        assert verdict.get_attribute("data-verdict") in ("real", "fake")
        page.wait_for_function("""() => { const v = document.getElementById("video");
            return v && v.readyState >= 2 && !v.paused && v.currentTime > 0.5 && v.videoWidth > 0; }""",
                               timeout=30_000)
        page.wait_for_function("document.getElementById('trend').naturalWidth > 0", timeout=10_000)
        assert page.locator("#tracks tbody tr").count() >= 1
        page.screenshot(path=str(screenshots / "serve-result.png"), full_page=True)
        page.goto(server.url + "/")
        page.wait_for_selector("#jobs tbody tr a", timeout=10_000)
        assert fake_video.name in page.locator("#jobs tbody").inner_text()
        page.screenshot(path=str(screenshots / "serve-home.png"))
    finally:
        browser.close()


def test_live_page_draws_a_coloured_box_with_a_score_within_10_s(playwright_api, server, real_video: Path,
                                                                  screenshots: Path, tmp_path: Path) -> None:
    clip = write_y4m(real_video, tmp_path / "webcam.y4m", seconds=3.0, size=(640, 480))
    browser = playwright_api.chromium.launch(executable_path=str(CHROMIUM),
                                             args=CHROMIUM_ARGS + fake_webcam_args(clip))
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(server.url + "/live?start")
        page.wait_for_function("window.fakescopeLive && window.fakescopeLive.boxesDrawn > 0", timeout=10_000)
        answer = page.evaluate("window.fakescopeLive.lastAnswer")
        face = answer["faces"][0]
        assert face["label"] in ("real", "fake") and 0 <= face["p_smooth"] <= 1
        # The box's own pixels on the overlay: green for real, red for fake.
        red, green, blue, alpha = page.evaluate("""(face) => {
            const canvas = document.getElementById("overlay"), answer = window.fakescopeLive.lastAnswer;
            const scale = canvas.width / answer.width, [x1, y1, x2, y2] = answer.faces[0].box.map((v) => v * scale);
            return Array.from(canvas.getContext("2d").getImageData(Math.round(x1), Math.round((y1 + y2) / 2), 1, 1).data);
        }""", face)
        assert alpha > 0 and ((red > 150 and green < 100) or (green > 100 and red < 100)), (red, green, blue)
        page.wait_for_timeout(3000)
        page.screenshot(path=str(screenshots / "serve-live.png"))
    finally:
        browser.close()
