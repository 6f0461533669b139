#!/usr/bin/env python3
"""Screenshot an HTML report with headless Chromium: ``screenshot_report.py REPORT.html OUT.png``.

Needs Chromium (Debian: ``apt-get install -y chromium``). Exits non-zero when no screenshot was written.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


def screenshot(report: Path, out: Path, width: int = 1280, height: int = 2000, timeout_s: float = 120.0) -> int:
    browser = find_chromium()
    if browser is None:
        print("chromium not found; install it (Debian: apt-get install -y chromium)", file=sys.stderr)
        return 2
    if not report.is_file():
        print(f"no such report: {report}", file=sys.stderr)
        return 2
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="fakescope-chromium-") as profile:
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--window-size={width},{height}", "--hide-scrollbars",
            f"--screenshot={out}", report.resolve().as_uri(),
        ]
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            print(f"chromium did not finish within {timeout_s:.0f} s", file=sys.stderr)
            return 1
    if not out.is_file() or out.stat().st_size == 0:
        print(f"no screenshot written (chromium exit {run.returncode}):\n{run.stderr[-2000:]}", file=sys.stderr)
        return 1
    print(out)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the report.html to open")
    parser.add_argument("out", type=Path, help="where to write the PNG")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2000)
    args = parser.parse_args()
    return screenshot(args.report, args.out, args.width, args.height)


if __name__ == "__main__":
    sys.exit(main())
