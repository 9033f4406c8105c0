"""The page at `/` in a real headless browser (Debian's chromium and chromium-driver, through
selenium): type a sentence, translate, read the translation, the heatmap and the n-best list.

Skipped only when chromium or chromedriver is not installed (`.ci/run` installs them).
`NMT_SERVE_SCREENSHOT=docs/serve_page.png NMT_SERVE_MODEL=runs/demo/model` also saves the
page as a PNG (how the README's screenshot was made), with that model instead of the small
one of tests/data.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve extra: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra: pip install -e '.[serve]'")
pytest.importorskip("selenium", reason="the test extra: pip install -e '.[test]'")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs chromium and chromedriver: apt-get install -y chromium chromium-driver")

MODEL = Path(os.environ.get("NMT_SERVE_MODEL")
             or Path(__file__).parent / "data" / "old_model_dir")
SENTENCE = "yesterday the teacher bought forty-two books."


@pytest.fixture(scope="module")
def translator():
    from nmt.api import Translator

    return Translator.load(MODEL, device="cpu")


@pytest.fixture(scope="module")
def url(translator):
    from nmt.serve.app import create_app, make_service
    from nmt.serve.protocol import Limits
    from nmt.serve.server import background

    with background(create_app(make_service(translator, Limits(), 64, 5.0))) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1000,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_the_page_translates_and_draws_the_heatmap(url, browser, translator):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    want = translator.translate([SENTENCE], nbest=2, alignments=True)[0]
    browser.get(url + "/")
    browser.find_element(By.ID, "source").send_keys(SENTENCE)
    nbest = browser.find_element(By.ID, "nbest")
    nbest.clear()
    nbest.send_keys("2")
    browser.find_element(By.ID, "translate").click()
    found = WebDriverWait(browser, 15).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "p.translation")))

    assert found.text == want.text
    assert browser.find_element(By.CSS_SELECTOR, "p.source").text == SENTENCE
    alternatives = browser.find_elements(By.CSS_SELECTOR, "ol.alternatives li")
    assert [li.text.rsplit(" (", 1)[0] for li in alternatives] == [
        c.text for c in want.candidates]

    a = want.alignment
    rows = browser.find_elements(By.CSS_SELECTOR, "table.al tr")
    assert len(rows) == 1 + len(a.tgt_words)
    assert [th.text for th in browser.find_elements(By.CSS_SELECTOR, "table.al th.tgt")] == \
        a.tgt_words
    cells = browser.find_elements(By.CSS_SELECTOR, "table.al td")
    assert len(cells) == len(a.src_words) * len(a.tgt_words)
    hard = browser.find_elements(By.CSS_SELECTOR, "table.al td.hard")
    assert len(hard) == len(a.links) > 0
    i, j = a.links[0]
    first = cells[j * len(a.src_words) + i]
    assert "hard" in first.get_attribute("class")
    assert first.get_attribute("title") == (
        f"{a.src_words[i]} \u2192 {a.tgt_words[j]}: {a.matrix[j][i]:.3f} (hard link)")
    assert first.value_of_css_property("outline-style") == "solid"  # the report's red outline

    ActionChains(browser).move_to_element(first).perform()
    assert browser.find_element(By.ID, "hover").text == first.get_attribute("title")
    assert "error" not in browser.find_element(By.ID, "status").get_attribute("class")
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]

    shot = os.environ.get("NMT_SERVE_SCREENSHOT")
    if shot:  # the whole page: a viewport as tall as the document
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 1000, "height": height + 20, "deviceScaleFactor": 1, "mobile": False})
        ActionChains(browser).move_to_element(first).perform()
        browser.save_screenshot(shot)


def test_an_error_is_shown_not_thrown(url, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url + "/")
    browser.find_element(By.ID, "translate").click()  # nothing typed
    status = browser.find_element(By.ID, "status")
    assert status.text == "type a sentence first" and status.get_attribute("class") == "error"
    browser.find_element(By.ID, "source").send_keys("a man.")
    beam = browser.find_element(By.ID, "beam")
    # past the field's own check: the server's refusal is what is shown
    browser.execute_script("arguments[0].removeAttribute('max'); arguments[0].value = '99'",
                           beam)
    browser.find_element(By.ID, "translate").click()
    WebDriverWait(browser, 15).until(lambda b: status.text.startswith("error:"))
    assert "beam: 99 is not between 1 and 16" in status.text
