"""``niche serve`` in a real browser: Debian's headless Chromium driven by selenium.

Starts the server on a free loopback port, loads the page, checks that the 3D view shows a
non-blank picture, moves the frame slider with the keyboard and checks that the picture
and the day label change. Screenshots are saved in the test's tmp folder. Chromium and
chromedriver come from Debian (``.ci/run`` installs them); the test is skipped where they
are missing, except on CI, where that is a failure.
"""
from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from .conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _need_browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        msg = f"Debian chromium/chromium-driver not installed ({', '.join(missing)})"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc, timeout: float = 90.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"niche serve exited: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"niche serve did not answer at {url}")


def _driver(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    o = Options()
    o.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1400,900", f"--user-data-dir={profile}"):
        o.add_argument(arg)
    # the Debian chromedriver: selenium must not try to download one
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)


def _view_pixels(driver) -> np.ndarray:
    from PIL import Image
    from selenium.webdriver.common.by import By

    png = driver.find_element(By.CSS_SELECTOR, ".niche-view").screenshot_as_png
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _wait(cond, timeout=60.0, what="condition"):
    from selenium.common.exceptions import WebDriverException

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            v = cond()
        except WebDriverException:  # the page is still being built
            v = None
        if v is not None and v is not False:
            return v
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _settled_view(driver, timeout=60.0, ready=None) -> np.ndarray:
    """The view's pixels once two looks 0.7 s apart agree (images stream in stages) and,
    if given, ``ready(pixels)`` holds; on a slow (loaded) machine the empty canvas can stay
    unchanged for a while before the first server render arrives. At the timeout: the last
    settled view (for the caller's assertion), or an error if none settled."""
    t0 = time.monotonic()
    prev = settled = None
    while time.monotonic() - t0 < timeout:
        try:
            img = _view_pixels(driver)
        except Exception:  # noqa: BLE001  (the page is still being built)
            img = None
        if img is not None and prev is not None and img.shape == prev.shape \
                and np.array_equal(img, prev):
            settled = img
            if ready is None or ready(img):
                return img
        prev = img
        time.sleep(0.7)
    if settled is not None and ready is not None:
        return settled
    raise AssertionError("the 3D view never settled")


def _nonblank(img: np.ndarray) -> bool:
    return img.std() > 20 and np.any(img != img[0, 0], axis=-1).mean() > 0.2


def test_serve_in_headless_chromium(run_path, tmp_path):
    _need_browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "niche.cli", "serve", str(run_path), "--port", str(port),
         "--size", "900x600"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    driver = None
    try:
        url = f"http://127.0.0.1:{port}/index.html"
        _wait_http(url, proc)
        driver = _driver(tmp_path / "chromium-profile")
        driver.get(url)
        day = lambda: driver.find_element(By.CSS_SELECTOR, ".niche-day").text
        _wait(lambda: "(1/3)" in day(), what="the page")
        first = _settled_view(driver, ready=_nonblank)
        assert _nonblank(first), "the 3D view is blank"
        driver.save_screenshot(str(tmp_path / "serve_frame0.png"))
        thumb = driver.find_element(By.CSS_SELECTOR, ".niche-frame-slider [role=slider]")
        thumb.send_keys(Keys.END)
        _wait(lambda: "(3/3)" in day(), what="the slider to reach the last frame")
        def changed():
            im = _settled_view(driver)
            return im if np.any(im != first, axis=-1).mean() > 0.05 else None

        last = _wait(changed, what="a new picture")
        assert _nonblank(last)
        driver.save_screenshot(str(tmp_path / "serve_frame_last.png"))
        # the play button advances frames on its own
        driver.find_element(By.CSS_SELECTOR, ".niche-play").click()
        _wait(lambda: "(3/3)" not in day(), what="play to advance")
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
    assert (tmp_path / "serve_frame_last.png").stat().st_size > 10_000
