"""The web page in a real browser (Debian's chromium and chromium-driver through Selenium) against the daemon
playing the one-face clip: no console errors, the live chart grows, a face card shows the events' label, the
history renders, a correction from the page lands as a labelled crop. MOODCAST_UPDATE_DOCS=1 also writes
docs/web.png."""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from tests.required import missing
from tools.web_daemon import ROOT, Daemon, start_daemon

# A browser and two daemons, and the page's charts and history filling in real time (20-30 s): make test-slow.
pytestmark = pytest.mark.slow

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 40.0) -> Any:
    """Call ``check`` until it returns something truthy. The page re-renders its cards and menus every second,
    so an element found by ``check`` can be replaced before it is used: that try counts as a miss."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = check()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from selenium import webdriver
    except ImportError:
        missing("selenium is not installed (make setup installs the dev extra)")
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

    # history: samples every 5 s; the page reads it at load, so load it again once the API has a bucket
    wait_for("a bucket in /api/v1/history", lambda: daemon.json("/api/v1/history")["buckets"])
    browser.refresh()
    history = browser.find_element(By.ID, "history-chart")
    wait_for("history buckets", lambda: int(history.get_attribute("data-buckets") or 0) >= 1)
    note_text = browser.find_element(By.ID, "history-note").text
    assert note_text and not re.search(r"\b1 five-minute periods|\b1 faces", note_text), note_text

    # feedback from the page: pick another label on the face's card
    def correct_first_card() -> tuple[str, str] | None:
        cards = browser.find_elements(By.CSS_SELECTOR, "#faces .card")
        if not cards:
            return None
        shown, face_id = cards[0].get_attribute("data-emotion"), cards[0].get_attribute("data-face-id")
        right = "surprise" if shown != "surprise" else "sad"
        Select(cards[0].find_element(By.TAG_NAME, "select")).select_by_value(right)
        return face_id, right

    face_id, right = wait_for("a card corrected by hand", correct_first_card)
    answer = f'#faces .card[data-face-id="{face_id}"] .feedback-result'
    note = wait_for("the feedback answer", lambda: browser.find_elements(By.CSS_SELECTOR, answer))[0]
    assert "saved" in note.text, note.text
    crops = list((daemon.log_path.parent / "feedback" / right).glob("*.png"))
    assert len(crops) == 1 and cv2.imread(str(crops[0]), cv2.IMREAD_UNCHANGED).shape == (48, 48)
    # after the correction the cards refresh again (the menu no longer holds the focus)
    browser.execute_script(
        "document.querySelectorAll('#faces .card').forEach((c) => { c.dataset.old = '1'; });"
    )
    wait_for(
        "the cards to refresh after a correction",
        lambda: (
            browser.find_elements(By.CSS_SELECTOR, "#faces .card")
            and not browser.find_elements(By.CSS_SELECTOR, "#faces .card[data-old]")
        ),
        timeout_s=10,
    )
    assert "saved" in browser.find_element(By.CSS_SELECTOR, answer).text  # the answer outlives the refresh

    # the "Emotion scores" chart follows the newest face in view once its face has left, unless picked by hand
    browser.execute_script(
        """const real = window.fetch;
        window.fetch = (path, options) => window.fakeFaces && String(path).startsWith("/api/v1/faces")
          ? Promise.resolve(new Response(JSON.stringify(window.fakeFaces)))
          : real(path, options);"""
    )
    pick = browser.find_element(By.ID, "face-pick")

    def fake(in_view: list[int], series: list[int]) -> None:
        now = time.time()
        points = [[now - 2, [0.1] * 7], [now - 1, [0.2] * 7]]
        faces = [{"id": i, "emotion": "happy", "confidence": 0.9, "on_screen_s": 3} for i in in_view]
        labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
        browser.execute_script(
            "window.fakeFaces = arguments[0];",
            {"labels": labels, "faces": faces, "series": {str(i): points for i in series}},
        )

    fake([1002], [1001, 1002])
    wait_for("the chart on face 1002", lambda: pick.get_attribute("value") == "1002", timeout_s=10)
    fake([1003], [1001, 1002, 1003])  # 1002 left; its series lasts a while
    wait_for("the chart to follow face 1003", lambda: pick.get_attribute("value") == "1003", timeout_s=10)
    # a face no longer in view, picked by hand, stays
    wait_for("face 1001 picked by hand", lambda: Select(pick).select_by_value("1001") or True, timeout_s=10)
    time.sleep(2.5)
    assert pick.get_attribute("value") == "1001"
    browser.execute_script("window.fakeFaces = null;")

    time.sleep(1.5)  # one more chart refresh for the screenshot
    screenshot = daemon.log_path.parent / "web.png"
    browser.save_screenshot(str(screenshot))
    assert cv2.imread(str(screenshot)) is not None
    if os.environ.get("MOODCAST_UPDATE_DOCS") == "1":
        shutil.copy(screenshot, ROOT / "docs" / "web.png")

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


@pytest.fixture(scope="module")
def daemon_with_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = start_daemon(tmp_path_factory.mktemp("sign-in"), token="t0k-" + uuid.uuid4().hex)
    yield running
    running.stop()


def test_the_sign_in_page(browser: Any, daemon_with_token: Daemon) -> None:
    from selenium.webdriver.common.by import By

    browser.get_log("browser")  # drop the earlier test's
    browser.get(f"http://127.0.0.1:{daemon_with_token.port}/")
    heading, form = browser.find_element(By.TAG_NAME, "h1"), browser.find_element(By.TAG_NAME, "form")
    # one column: the heading above the form, not beside it
    assert form.rect["y"] >= heading.rect["y"] + heading.rect["height"], (heading.rect, form.rect)
    assert abs(form.rect["x"] - heading.rect["x"]) < 2, (heading.rect, form.rect)
    assert not browser.find_elements(By.CLASS_NAME, "login-error")
    browser.find_element(By.NAME, "token").send_keys("wrong")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    error = wait_for("the wrong-token message", lambda: browser.find_elements(By.CLASS_NAME, "login-error"))[
        0
    ]
    assert "wrong" in error.text
    time.sleep(0.5)
    favicon = [entry for entry in browser.get_log("browser") if "favicon" in entry["message"]]
    assert not favicon, favicon
