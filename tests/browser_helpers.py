"""Helpers of the tests that drive the review page in a real browser (headless chromium
and chromedriver through Selenium; ``tools/install_browser.py`` installs them).

A test module imports ``selenium.webdriver`` with ``pytest.importorskip`` first, sets
``pytestmark = BROWSER_MARKS`` and gets the module-scoped ``browser`` fixture by
importing :func:`browser_fixture`.
"""

from __future__ import annotations

import base64
import io
import shutil

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
#: Marks of a browser test module: slow (a real browser), skipped without the browser.
BROWSER_MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and DRIVER),
        reason="chromium and chromedriver are not installed and could not be (needs root and "
        "apt-get): run python tools/install_browser.py",
    ),
]


@pytest.fixture(scope="module", name="browser")
def browser_fixture():
    """A headless chromium at 1280x800, quit after the module's tests."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", "--window-size=1280,800"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    driver.set_script_timeout(20)
    yield driver
    driver.quit()


def wait(driver, condition, seconds: float = 20):
    """``condition(driver)``'s first true value, polled every 50 ms for ``seconds``."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.05).until(lambda d: condition(d))


def decode_data_url(data_url: str) -> np.ndarray:
    """``(H, W, 3)`` float64 RGB of an image ``data:`` URL (a preview the page shows)."""
    raw = base64.b64decode(data_url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"), np.float64)
