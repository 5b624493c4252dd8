"""instacolor review in a real browser: picking a colour reference with a hostile file name.

As tests/test_review_browser.py: headless chromium driven by Selenium, skipped (saying
so) without chromium and chromedriver.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="instacolor review needs the 'review' extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from instacolor.review.server import ReviewServer  # noqa: E402
from tests.review_helpers import XSS_REFERENCE, make_batch, sha  # noqa: E402
from tests.review_helpers import colour_photo as _colour  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,  # a real browser
    pytest.mark.skipif(
        not (CHROMIUM and DRIVER),
        reason="chromium and chromedriver are not installed and could not be (needs root and "
        "apt-get): run python tools/install_browser.py",
    ),
]
_INJECTED = (
    "return {xss: window.__xss === undefined ? null : String(window.__xss),"
    " injected: document.querySelectorAll('img[src=\"x\"], script:not([src])').length}"
)


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    outdir = make_batch(tmp_path_factory.mktemp("reference-browser"))
    _colour(outdir.parent / "in" / XSS_REFERENCE)
    return outdir


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", "--window-size=1280,800"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    driver.set_script_timeout(20)
    yield driver
    driver.quit()


def _wait(driver, condition, seconds: float = 30):
    return WebDriverWait(driver, seconds, poll_frequency=0.05).until(lambda d: condition(d))


def _decode(src: str) -> np.ndarray:
    raw = base64.b64decode(src.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"), np.float64)


def test_pick_a_hostile_named_reference_preview_and_apply(browser, batch):
    with ReviewServer.start(batch, port=0, reviewer="grace") as server:
        browser.get(server.url)
        _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 4)
        card = next(
            c
            for c in browser.find_elements(By.CSS_SELECTOR, ".card")
            if c.find_element(By.CSS_SELECTOR, ".meta span").text == "scan0.png"
        )
        browser.get(f"{server.url}#/image/{card.get_attribute('data-index')}")
        main = browser.find_element(By.ID, "main")
        _wait(browser, lambda d: main.get_attribute("naturalWidth") not in (None, "0"))
        select = browser.find_element(By.ID, "reference")
        _wait(browser, lambda d: len(select.find_elements(By.TAG_NAME, "option")) > 1)
        texts = [o.text for o in select.find_elements(By.TAG_NAME, "option")]
        assert XSS_REFERENCE in texts and texts[0] == "none"
        assert browser.execute_script(_INJECTED) == {"xss": None, "injected": 0}
        browser.execute_script(  # as a click on the option would (its value is not CSS-safe)
            "arguments[0].value = arguments[1];arguments[0].dispatchEvent(new Event('change'));",
            select,
            XSS_REFERENCE,
        )
        assert select.get_attribute("value") == XSS_REFERENCE
        status = browser.find_element(By.ID, "correct-status")
        _wait(
            browser,
            lambda d: (
                main.get_attribute("data-preview-seq") or "error" in status.get_attribute("class")
            ),
            120,
        )
        assert main.get_attribute("data-preview-seq") == "1", status.text
        preview = _decode(main.get_attribute("src"))
        colorized = np.asarray(Image.open(batch / "scan0.png").convert("RGB"), np.float64)
        assert np.abs(preview - colorized).mean() > 3.0  # its colours came from the reference
        before = sha(batch / "scan0.png")
        browser.find_element(By.ID, "apply").click()
        _wait(browser, lambda d: status.text.startswith("applied"), 60)
        assert sha(batch / "scan0.png") != before
        last = json.loads((batch / "manifest.jsonl").read_text().splitlines()[-1])
        assert last["review"]["reference"] == XSS_REFERENCE
        assert [r["origin"] for r in last["references"]] == ["hints"]
        assert Path(last["references"][0]["path"]).name == XSS_REFERENCE
        assert browser.execute_script(_INJECTED) == {"xss": None, "injected": 0}
