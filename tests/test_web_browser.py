"""The web page in a real browser (Debian's chromium and chromium-driver through Selenium) against the daemon
playing the one-face clip: no console errors, the live chart grows, a face card shows the events' label, the
history renders, a correction from the page lands as a labelled crop. MOODCAST_UPDATE_DOCS=1 also writes
docs/web.png."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from tests.required import missing
from tests.web_daemon import ROOT, Daemon, start_daemon

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMEDRIVER).exists() and Path(CHROMIUM).exists()):
        missing("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1400"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("page")
    running = start_daemon(tmp, "--feedback-enabled", "--feedback-dir", str(tmp / "feedback"))
    yield running
    running.stop()


def test_the_page_live(browser: Any, daemon: Daemon) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base = f"http://127.0.0.1:{daemon.port}"
    browser.get(base + "/")
    chart = browser.find_element(By.ID, "face-chart")
    first = int(wait_for("points on the face chart", lambda: int(chart.get_attribute("data-points") or 0)))
    wait_for("the chart to gain points", lambda: int(chart.get_attribute("data-points") or 0) > first)
    mood = browser.find_element(By.ID, "mood-chart")
    assert int(mood.get_attribute("data-points") or 0) > 0

    def card_matches_events() -> bool:
        cards = browser.find_elements(By.CSS_SELECTOR, "#faces .card")
        if not cards:
            return False
        face_id, shown = int(cards[0].get_attribute("data-face-id")), cards[0].get_attribute("data-emotion")
        latest = [e for e in daemon.events() if e["face_id"] == face_id and e["type"] != "end"]
        return bool(latest) and latest[-1]["emotion"] == shown

    wait_for("a face card showing the label of the face's latest event", card_matches_events)

    # history: samples every 5 s; the page reads it at load, so load it again once some are stored
    time.sleep(6)
    browser.refresh()
    history = browser.find_element(By.ID, "history-chart")
    wait_for("history buckets", lambda: int(history.get_attribute("data-buckets") or 0) >= 1)
    assert browser.find_element(By.ID, "history-note").text

    # feedback from the page: pick another label on the face's card
    card = wait_for("a card", lambda: browser.find_elements(By.CSS_SELECTOR, "#faces .card"))[0]
    shown = card.get_attribute("data-emotion")
    right = "surprise" if shown != "surprise" else "sad"
    Select(card.find_element(By.TAG_NAME, "select")).select_by_value(right)
    note = wait_for("the feedback answer", lambda: card.find_elements(By.CLASS_NAME, "feedback-result"))[0]
    assert "saved" in note.text, note.text
    crops = list((daemon.log_path.parent / "feedback" / right).glob("*.png"))
    assert len(crops) == 1 and cv2.imread(str(crops[0]), cv2.IMREAD_UNCHANGED).shape == (48, 48)

    time.sleep(1.5)  # one more chart refresh for the screenshot
    screenshot = daemon.log_path.parent / "web.png"
    browser.save_screenshot(str(screenshot))
    assert cv2.imread(str(screenshot)) is not None
    if os.environ.get("MOODCAST_UPDATE_DOCS") == "1":
        shutil.copy(screenshot, ROOT / "docs" / "web.png")

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors
