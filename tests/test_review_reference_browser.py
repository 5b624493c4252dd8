"""instacolor review in a real browser: picking a colour reference with a hostile file name.

As tests/test_review_browser.py: headless chromium driven by Selenium, skipped (saying
so) without chromium and chromedriver.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="instacolor review needs the 'review' extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from selenium.webdriver.common.by import By  # noqa: E402

from instacolor.review.server import ReviewServer  # noqa: E402
from tests.browser_helpers import (  # noqa: E402
    BROWSER_MARKS,
    browser_fixture,  # noqa: F401
    decode_data_url,
    wait,
)
from tests.review_helpers import XSS_REFERENCE, make_batch, sha  # noqa: E402
from tests.review_helpers import colour_photo as _colour  # noqa: E402

pytestmark = BROWSER_MARKS
_INJECTED = (
    "return {xss: window.__xss === undefined ? null : String(window.__xss),"
    " injected: document.querySelectorAll('img[src=\"x\"], script:not([src])').length}"
)


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    outdir = make_batch(tmp_path_factory.mktemp("reference-browser"))
    hostile = _colour(outdir.parent / "in" / XSS_REFERENCE)
    manifest = outdir / "manifest.jsonl"
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    (scan1,) = [r for r in records if r.get("input", "").endswith("scan1.png")]
    scan1["references"] = [  # a record naming a hostile file it did not use, and one it did
        {"path": str(hostile), "sha256": "0" * 64, "origin": "option"},
        {
            "path": str(hostile.with_name(XSS_REFERENCE + ".jpg")),
            "sha256": "1" * 64,
            "origin": "hints",
        },
        {"path": str(hostile), "sha256": sha(hostile), "origin": "hints"},
    ]
    with manifest.open("a") as f:
        f.write(json.dumps(scan1) + "\n")
    return outdir


def _open_image(browser, server, name: str) -> None:
    """Load the grid, then the page of the image whose input is ``name``."""
    browser.get(server.url)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 4, 30)
    card = next(
        c
        for c in browser.find_elements(By.CSS_SELECTOR, ".card")
        if c.find_element(By.CSS_SELECTOR, ".meta span").text == name
    )
    browser.get(f"{server.url}#/image/{card.get_attribute('data-index')}")


def test_hostile_names_of_an_outputs_references_are_shown_as_text(browser, batch):
    with ReviewServer.start(batch, port=0, reviewer="grace") as server:
        _open_image(browser, server, "scan1.png")
        dropped = browser.find_element(By.ID, "dropped-references")
        wait(browser, lambda d: dropped.get_attribute("hidden") is None, 30)
        assert dropped.text.count("<img src=x onerror=") == 2, dropped.text  # shown as text
        kept = browser.find_element(By.ID, "kept-names")
        assert (
            kept.text == XSS_REFERENCE
            and browser.find_element(By.ID, "keep-references").is_selected()
        )
        assert browser.execute_script(_INJECTED) == {"xss": None, "injected": 0}


def test_pick_a_hostile_named_reference_preview_and_apply(browser, batch):
    with ReviewServer.start(batch, port=0, reviewer="grace") as server:
        _open_image(browser, server, "scan0.png")
        main = browser.find_element(By.ID, "main")
        wait(browser, lambda d: main.get_attribute("naturalWidth") not in (None, "0"), 30)
        select = browser.find_element(By.ID, "reference")
        wait(browser, lambda d: len(select.find_elements(By.TAG_NAME, "option")) > 1, 30)
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
        wait(
            browser,
            lambda d: (
                main.get_attribute("data-preview-seq") or "error" in status.get_attribute("class")
            ),
            120,
        )
        assert main.get_attribute("data-preview-seq") == "1", status.text
        preview = decode_data_url(main.get_attribute("src"))
        colorized = np.asarray(Image.open(batch / "scan0.png").convert("RGB"), np.float64)
        assert np.abs(preview - colorized).mean() > 3.0  # its colours came from the reference
        before = sha(batch / "scan0.png")
        browser.find_element(By.ID, "apply").click()
        wait(browser, lambda d: status.text.startswith("applied"), 60)
        assert sha(batch / "scan0.png") != before
        last = json.loads((batch / "manifest.jsonl").read_text().splitlines()[-1])
        assert last["review"]["reference"] == XSS_REFERENCE
        assert [r["origin"] for r in last["references"]] == ["hints"]
        assert Path(last["references"][0]["path"]).name == XSS_REFERENCE
        assert browser.execute_script(_INJECTED) == {"xss": None, "injected": 0}
