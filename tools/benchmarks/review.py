"""Time from click to preview in instacolor review, on CPU, per working size.

Makes a batch of gray copies of ``tools/samples/*.jpg`` (or ``--images``) with the CLI
code, serves it with the real server, and in headless chromium (when installed) clicks
the first image with a colour and reads how long the page took until the preview was shown
(``data-preview-ms``: request, re-colorization, PNG, decode). Without a browser, or with
``--http``, it times the same POST /preview over HTTP. Prints the median and range of
``--clicks`` clicks (1, 2, ... hints) per working size.

Usage:
    python tools/bench.py review --working-sizes 128,256 --clicks 8 --screenshots docs/images
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .common import ROOT

if TYPE_CHECKING:
    from instacolor.review.server import ReviewServer


def make_batch(images: list[Path], root: Path, working_size: int) -> Path:
    """Gray PNG copies of ``images`` colorized into ``root/out<working_size>`` (a batch)."""
    from instacolor.batch.run import colorize_batch
    from instacolor.batch.worker import Settings

    inputs = root / "in"
    inputs.mkdir(parents=True)
    for path in images:
        Image.open(path).convert("L").save(inputs / f"{path.stem}.png", icc_profile=None)
    outdir = root / f"out{working_size}"
    colorize_batch([str(inputs)], outdir, Settings(working_size=working_size))
    return outdir


def http_clicks(server: ReviewServer, size: tuple[int, int], clicks: int) -> list[float]:
    times, points = [], []
    rng = np.random.default_rng(0)
    for _ in range(clicks):
        points.append({"x": float(rng.uniform(0, size[1])), "y": float(rng.uniform(0, size[0])),
                       "color": "#c03020", "radius": 3})  # fmt: skip
        body = json.dumps({"points": points}).encode()
        request = urllib.request.Request(
            server.url + "api/images/0/preview", body, method="POST",
            headers={"Content-Type": "application/json", "X-Review-Token": server.state.token},
        )  # fmt: skip
        t0 = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            response.read()
        times.append(time.perf_counter() - t0)
    return times


def browser_clicks(server: ReviewServer, clicks: int, shots: Path | None = None) -> list[float]:
    from selenium import webdriver
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(shutil.which("chromedriver"))
    )
    try:
        if shots is not None:
            driver.get(server.url)
            loaded = (
                "const i = [...document.querySelectorAll('.card img')];"
                "return i.length > 0 && i.every(i => i.complete && i.naturalWidth)"
            )
            WebDriverWait(driver, 30).until(lambda d: d.execute_script(loaded))
            driver.save_screenshot(str(shots / "review-grid.png"))
        driver.get(server.url + "#/image/0")
        main = driver.find_element(By.ID, "main")
        WebDriverWait(driver, 30).until(lambda d: main.get_attribute("naturalWidth") != "0")
        rng, times = np.random.default_rng(0), []
        for k in range(1, clicks + 1):
            w, h = main.size["width"], main.size["height"]
            dx, dy = rng.uniform(-0.4, 0.4) * w, rng.uniform(-0.4, 0.4) * h
            ActionChains(driver).move_to_element_with_offset(
                main, int(dx), int(dy)
            ).click().perform()
            WebDriverWait(driver, 60, 0.01).until(
                lambda d, k=k: main.get_attribute("data-preview-seq") == str(k)
            )
            times.append(float(main.get_attribute("data-preview-ms")) / 1000)
            if shots is not None and k == 1:  # the correction view with one hint
                driver.save_screenshot(str(shots / "review-correct.png"))
    finally:
        driver.quit()
    return times


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``tools/bench.py review``."""
    parser.add_argument("--working-sizes", default="128,256")
    parser.add_argument("--clicks", type=int, default=8)
    parser.add_argument("--images", nargs="*", type=Path)
    parser.add_argument("--display-size", type=int, default=768)
    parser.add_argument("--http", action="store_true", help="time HTTP requests, no browser")
    parser.add_argument(
        "--screenshots", type=Path, help="save the grid and correction view here (first size)"
    )


def run(args: argparse.Namespace) -> int:
    """Time the clicks per working size; prints one line each."""
    from instacolor.colorizer import Colorizer
    from instacolor.review.server import ReviewServer

    images = args.images or sorted((ROOT / "tools" / "samples").glob("*.jpg"))
    use_browser = not args.http and shutil.which("chromium") and shutil.which("chromedriver")
    how = "browser click" if use_browser else "HTTP POST"
    print(
        f"image {images[0].name} {Image.open(images[0]).size}, display {args.display_size}, {how}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.working_sizes.split(",")):
            outdir = make_batch(images, Path(tmp) / str(size), size)
            colorizer = Colorizer(working_size=size)
            with ReviewServer.start(
                outdir, port=0, colorizer=colorizer, display_size=args.display_size
            ) as server:
                view = server.state.engine.view(server.state.batch.items[0])
                shots, args.screenshots = args.screenshots, None  # the first size only
                times = (
                    browser_clicks(server, args.clicks, shots)
                    if use_browser
                    else http_clicks(server, view.full_size, args.clicks)
                )
            ms = [1000 * t for t in times]
            print(
                f"working size {size}: click to preview median {statistics.median(ms):.0f} ms "
                f"(min {min(ms):.0f}, max {max(ms):.0f}; {len(ms)} clicks, 1..{len(ms)} hints)"
            )
    return 0
