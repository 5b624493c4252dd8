"""instacolor review in a real browser: headless Debian chromium driven by Selenium.

The batch is made in the test by the CLI (``make_batch`` of tests/review_helpers.py); the
server is the real one on a free port. ``tools/install_browser.py`` (run by the test
command) installs chromium and chromium-driver; without them these tests skip, saying so.
Screenshots of the grid and the correction view go to ``$INSTACOLOR_SCREENSHOTS`` (default:
a temporary folder); docs/ shows those of ``tools/bench.py review --screenshots``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="instacolor review needs the 'review' extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

from instacolor.review.server import ReviewServer  # noqa: E402
from tests.browser_helpers import (  # noqa: E402
    BROWSER_MARKS,
    browser_fixture,  # noqa: F401
    decode_data_url,
    wait,
)
from tests.review_helpers import make_batch, sha  # noqa: E402

pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    return make_batch(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def server(batch):
    with ReviewServer.start(batch, port=0, reviewer="grace") as running:
        yield running


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("INSTACOLOR_SCREENSHOTS")
    return Path(folder) if folder else tmp_path_factory.mktemp("shots")


def index_of(driver, name: str) -> int:
    cards = driver.find_elements(By.CSS_SELECTOR, ".card")
    for card in cards:
        if card.find_element(By.CSS_SELECTOR, ".meta span").text == name:
            return int(card.get_attribute("data-index"))
    raise AssertionError(f"{name} not in the grid")


def keys(driver, text: str) -> None:
    ActionChains(driver).send_keys(text).perform()


def test_grid_lists_every_image(browser, server, shots):
    browser.get(server.url)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 4)
    names = sorted(
        e.text for e in browser.find_elements(By.CSS_SELECTOR, ".card .meta span:first-child")
    )
    assert names == ["broken.png", "scan0.png", "scan1.png", "scan2.png"]
    assert "no confidence map" in browser.find_element(By.ID, "confidence-note").text
    assert browser.find_element(By.ID, "sort").get_attribute("value") == "status"
    loaded = "return [...document.querySelectorAll('.card img')].every(i => i.naturalWidth > 0)"
    wait(browser, lambda d: d.execute_script(loaded))
    browser.save_screenshot(str(shots / "review-grid.png"))


def test_click_and_colour_change_the_preview_near_the_click(browser, server, batch, shots):
    n = index_of(browser, "scan1.png")
    browser.get(f"{server.url}#/image/{n}")
    main = browser.find_element(By.ID, "main")
    wait(browser, lambda d: main.get_attribute("naturalWidth") not in (None, "0"))
    keys(browser, "+++++")  # zoom 1.25^5
    browser.execute_script(
        "const c = document.getElementById('hint-color'); c.value = '#1040ff';"
        "c.dispatchEvent(new Event('input'));"
    )
    width, height = main.size["width"], main.size["height"]
    assert width > 200  # zoomed from 96 px
    x, y = 40, 36  # input pixels of the 96x72 scan
    ActionChains(browser).move_to_element_with_offset(
        main, int((x + 0.5) / 96 * width - width / 2), int((y + 0.5) / 72 * height - height / 2)
    ).click().perform()
    wait(browser, lambda d: main.get_attribute("data-preview-seq") == "1")
    preview = decode_data_url(main.get_attribute("src"))
    colorized = np.asarray(Image.open(batch / "scan1.png").convert("RGB")).astype(float)
    near = (slice(y - 2, y + 3), slice(x - 2, x + 3))
    blue_gain = (preview[near][..., 2] - preview[near][..., 0]).mean() - (
        colorized[near][..., 2] - colorized[near][..., 0]
    ).mean()
    assert blue_gain > 20
    far = (slice(0, 6), slice(90, 96))  # another region, across strong edges
    assert (
        np.abs(preview[far] - colorized[far]).mean()
        < np.abs(preview[near] - colorized[near]).mean()
    )
    hint = re.search(r"point \((\d+), (\d+)\)", browser.find_element(By.ID, "hint-list").text)
    assert abs(int(hint[1]) - x) <= 1 and abs(int(hint[2]) - y) <= 1
    assert int(main.get_attribute("data-preview-ms")) < 5000
    browser.save_screenshot(str(shots / "review-correct.png"))


def test_apply_writes_a_new_output_and_a_manifest_record(browser, batch):
    output, before = batch / "scan1.png", sha(batch / "scan1.png")
    browser.find_element(By.ID, "apply").click()
    status = browser.find_element(By.ID, "correct-status")
    wait(browser, lambda d: status.text.startswith("applied"))
    assert sha(output) != before
    last = json.loads((batch / "manifest.jsonl").read_text().splitlines()[-1])
    assert last["output"] == str(output) and last["output_sha256"] == sha(output)
    point = last["review"]["hints"]["points"][0]
    assert abs(point["x"] - 40.5) < 1.5 and abs(point["y"] - 36.5) < 1.5
    assert last["review"]["reviewer"] == "grace"


def test_accept_key_appends_to_the_log_and_reload_shows_it(browser, server, batch):
    log = batch / "review.jsonl"
    lines = len(log.read_text().splitlines()) if log.exists() else 0
    browser.execute_script("document.activeElement.blur()")
    keys(browser, "a")
    wait(browser, lambda d: log.exists() and len(log.read_text().splitlines()) == lines + 1)
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["decision"] == "accept" and entry["reviewer"] == "grace"
    assert entry["output"] == str(batch / "scan1.png") and entry["output_sha256"] == sha(
        batch / "scan1.png"
    )
    browser.refresh()
    state = browser.find_element(By.ID, "decision-state")
    wait(browser, lambda d: "accept by grace" in state.text)
    keys(browser, "\ue00c")  # Escape: back to the grid
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".card .badge.accept"))
    badges = browser.find_elements(By.CSS_SELECTOR, ".card .badge.accept")
    assert len(badges) == 1


def test_keyboard_moves_to_the_next_image(browser, server):
    browser.get(f"{server.url}?fresh=1")  # a new page load, not a hash change
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 4)
    first, second = browser.execute_script("return S.order")[:2]
    browser.find_element(By.CSS_SELECTOR, f'.card[data-index="{first}"]').click()
    name = browser.find_element(By.ID, "image-name")
    wait(browser, lambda d: d.current_url.endswith(f"#/image/{first}") and name.text)
    shown = name.text
    browser.execute_script("document.activeElement.blur()")
    keys(browser, "j")
    wait(browser, lambda d: d.current_url.endswith(f"#/image/{second}"))
    wait(browser, lambda d: name.text not in ("", shown))
    keys(browser, "k")
    wait(browser, lambda d: d.current_url.endswith(f"#/image/{first}") and name.text == shown)


def test_traversal_and_missing_token_are_refused_from_the_page(browser, server):
    browser.get(server.url)
    statuses = browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        Promise.all([
          fetch('/static/..%2F..%2Fmanifest.jsonl').then(r => r.status),
          fetch('/api/images/0/..%2F..%2F..%2Fetc%2Fpasswd').then(r => r.status),
          fetch('/api/images/0/decision', {method: 'POST', body: '{"decision":"accept"}',
                headers: {'Content-Type': 'application/json'}}).then(r => r.status),
        ]).then(done);"""
    )
    assert statuses == [404, 404, 403]


def test_instance_mode_colours_the_clicked_instance(browser, batch, server):
    from instacolor.colorizer import Colorizer
    from tests.review_helpers import FlatRegionDetector

    colorizer = Colorizer("instacolor-w16-v4", working_size=64, detector=FlatRegionDetector())
    with ReviewServer.start(batch, port=0, colorizer=colorizer) as detecting:
        browser.get(f"{detecting.url}#/image/{index_of_api(detecting, 'scan2.png')}")
        main = browser.find_element(By.ID, "main")
        wait(browser, lambda d: main.get_attribute("naturalWidth") not in (None, "0"))
        keys(browser, "++++")
        browser.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="instance"]').click()
        browser.execute_script(
            "const c = document.getElementById('hint-color'); c.value = '#10c020';"
        )
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#markers .box"))
        assert "car" in browser.find_element(By.CSS_SELECTOR, "#markers .box").text
        width, height = main.size["width"], main.size["height"]
        ActionChains(browser).move_to_element_with_offset(
            main, int(40 / 96 * width - width / 2), int(36 / 72 * height - height / 2)
        ).click().perform()
        wait(browser, lambda d: main.get_attribute("data-preview-seq") == "1")
        assert "instance 0" in browser.find_element(By.ID, "hint-list").text
        preview = decode_data_url(main.get_attribute("src"))
        green = preview[..., 1] - preview[..., [0, 2]].max(-1)
        assert green[24:48, 28:52].mean() > green[:, 70:].mean() + 10


def index_of_api(server: ReviewServer, name: str) -> int:
    return next(i.index for i in server.state.batch.items if i.input.name == name)


# -- hostile data: names, comments, reviewers and manifest errors never run script --------

_INJECTED = (
    "return {xss: window.__xss === undefined ? null : String(window.__xss),"
    " injected: document.querySelectorAll('img[src=\"x\"], svg, b, i, script:not([src])').length}"
)


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    from tests.review_helpers import XSS_REVIEWER, make_hostile_batch

    outdir = make_hostile_batch(tmp_path_factory.mktemp("hostile-browser"))
    with ReviewServer.start(outdir, port=0, reviewer=XSS_REVIEWER) as running:
        yield running


def test_hostile_names_errors_and_reviewers_show_as_text(browser, hostile_server):
    from tests.review_helpers import XSS_ERROR, XSS_NAME, XSS_REVIEWER

    browser.get(hostile_server.url)
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 3)
    names = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".card .meta span:first-child")]
    assert XSS_NAME in names and "bad<b>.png" in names
    failed = browser.find_element(By.CSS_SELECTOR, ".card div.failed").text
    assert failed == XSS_ERROR
    assert XSS_REVIEWER in browser.find_element(By.ID, "batch-info").text
    badge = browser.find_element(By.CSS_SELECTOR, ".card .badge.accept")
    assert XSS_REVIEWER in badge.get_attribute("title")
    assert browser.execute_script(_INJECTED) == {"xss": None, "injected": 0}


def test_hostile_comment_and_log_lines_show_as_text_in_the_image_view(browser, hostile_server):
    from tests.review_helpers import XSS_COMMENT, XSS_NAME, XSS_REVIEWER

    state = hostile_server.state
    plain = next(i.index for i in state.batch.items if i.input.name == "plain.png")
    hostile = next(i.index for i in state.batch.items if i.input.name == XSS_NAME)
    browser.get(f"{hostile_server.url}#/image/{plain}")
    history = browser.find_element(By.ID, "history")
    wait(browser, lambda d: XSS_COMMENT in history.text)
    assert XSS_REVIEWER in history.text and "<i>t</i>" in history.text
    assert XSS_COMMENT in browser.find_element(By.ID, "decision-state").text
    # a reviewer writes a hostile comment through the page itself
    browser.find_element(By.ID, "comment").send_keys(XSS_COMMENT + " again")
    browser.find_element(By.ID, "needs-work").click()
    wait(browser, lambda d: "again" in d.find_element(By.ID, "decision-state").text)
    browser.get(f"{hostile_server.url}#/image/{hostile}")
    name = browser.find_element(By.ID, "image-name")
    wait(browser, lambda d: name.text == XSS_NAME)
    main = browser.find_element(By.ID, "main")
    wait(browser, lambda d: main.get_attribute("naturalWidth") not in (None, "0"))
    browser.refresh()
    wait(browser, lambda d: d.find_element(By.ID, "image-name").text == XSS_NAME)
    assert browser.execute_script(_INJECTED) == {"xss": None, "injected": 0}
    entry = json.loads((state.batch.outdir / "review.jsonl").read_text().splitlines()[-1])
    assert entry["comment"] == XSS_COMMENT + " again" and entry["decision"] == "needs-work"


def test_the_policy_blocks_inline_script_in_the_browser(browser, hostile_server):
    browser.get(hostile_server.url)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".card"))
    ran = browser.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.__csp = 1';"
        "document.body.append(s);"
        "const d = document.createElement('div');"
        "d.innerHTML = '<img src=x onerror=\"window.__csp = 2\">'; document.body.append(d);"
        "return window.__csp === undefined ? null : window.__csp;"
    )
    assert ran is None
    wait(browser, lambda d: d.execute_script("return document.querySelector('div img[src=\"x\"]')"
                                              " && document.querySelector('div img[src=\"x\"]')"
                                              ".complete"))  # fmt: skip
    assert browser.execute_script("return window.__csp === undefined")  # onerror blocked too


def test_the_page_cannot_be_framed(browser, hostile_server):
    frame = f'<iframe id="f" src="{hostile_server.url}"></iframe>'
    browser.get("data:text/html;charset=utf-8," + frame)
    browser.switch_to.frame("f")
    try:
        with pytest.raises(TimeoutException):  # refused: the page never shows in the frame
            wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#grid"), seconds=4)
    finally:
        browser.switch_to.default_content()


def test_a_public_server_works_in_the_browser_through_the_printed_address(browser, hostile_server):
    outdir = hostile_server.state.batch.outdir
    colorizer = hostile_server.state.engine.colorizer
    with ReviewServer.start(outdir, host="0.0.0.0", port=0, colorizer=colorizer,
                            quiet=True) as public:  # fmt: skip
        bare = public.url.split("?", 1)[0]
        browser.get(bare)  # without the token: nothing about the batch
        assert "token" in browser.find_element(By.TAG_NAME, "body").text
        assert not browser.find_elements(By.CSS_SELECTOR, ".card")
        browser.get(public.url)  # the printed address: redirect, cookie, then the page
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 3)
        assert "token" not in browser.current_url
        plain = next(i.index for i in public.state.batch.items if i.input.name == "plain.png")
        browser.get(f"{bare}#/image/{plain}")
        main = browser.find_element(By.ID, "main")
        wait(browser, lambda d: main.get_attribute("naturalWidth") not in (None, "0"))
        browser.find_element(By.ID, "comment").send_keys("public ok")
        browser.find_element(By.ID, "reject").click()
        wait(browser, lambda d: "public ok" in d.find_element(By.ID, "decision-state").text)
        assert browser.execute_script(_INJECTED) == {"xss": None, "injected": 0}
    entry = json.loads((outdir / "review.jsonl").read_text().splitlines()[-1])
    assert entry["comment"] == "public ok" and entry["decision"] == "reject"
