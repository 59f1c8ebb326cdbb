"""The browser demo (/demo) in a real headless Chromium, against the real gateway, Triton and Whisper.

Chromium's fake microphone plays a real LibriSpeech utterance in a loop; the page signs up, enrols a
voice from it, streams it English -> English (passthrough: no translation model needed) and plays the
answer. Debian's `chromium` and `chromium-driver` are used as installed (`make setup`); nothing is
downloaded.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from gateway.embedded import gateway_in_thread
from tests.gateway.api_support import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = Path("/tmp/demo.png")

# What the page shows, read in one round trip; the waits below poll it.
PAGE_STATE = """
const cells = (selector) => [...document.querySelectorAll(selector)].map((c) => c.textContent.trim());
return {
  status: document.getElementById("status").textContent,
  alert: document.getElementById("alert").hidden ? "" : document.getElementById("alert").textContent,
  who: document.getElementById("who").textContent,
  profiles: [...document.getElementById("profile").options].map((o) => o.value).filter(Boolean),
  utterances: [...document.querySelectorAll("#utterances tbody tr")].map((row) => ({
    transcript: row.cells[1].classList.contains("final") ? row.cells[1].textContent : "",
    translation: row.cells[2].textContent,
  })),
  metrics: document.querySelectorAll("#metrics tbody tr").length,
  audioChunks: Number(document.getElementById("player").dataset.audioChunks),
  events: cells("#events li"),
};
"""


@pytest.fixture
def speech_wav(tmp_path, utterances) -> Path:
    """The shortest utterance, so the first answer comes soon; Chromium loops the file, and the silence
    at its end is what lets the server's VAD close each utterance."""
    _, samples = min(utterances, key=lambda utterance: len(utterance[1]))
    path = tmp_path / "speech.wav"
    soundfile.write(path, np.concatenate([samples, np.zeros(int(1.5 * 16_000), np.float32)]), 16_000,
                    subtype="PCM_16")
    return path


@pytest.fixture
def browser(speech_wav):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("Debian's chromium and chromium-driver are not installed: run `make setup`")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--window-size=1280,1700",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech_wav}",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path keeps Selenium Manager (which would download drivers) out of the way.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(browser, condition, timeout: float, what: str) -> dict:
    """Poll the page state until `condition(state)` holds; fail with what the page says otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        state = browser.execute_script(PAGE_STATE)
        if condition(state):
            return state
        if time.monotonic() > deadline:
            browser.save_screenshot(str(SCREENSHOT))
            pytest.fail(f"the page never showed {what} in {timeout:.0f} s; it shows {state}")
        time.sleep(0.25)


def test_demo_assets_are_served_and_nothing_else(gateway_settings):
    with gateway_in_thread(gateway_settings) as (base, _), httpx.Client(base_url=base) as client:
        page = client.get("/demo")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert client.get("/demo/static/app.js").headers["content-type"].startswith("text/javascript")
        assert client.get("/demo/static/style.css").headers["content-type"].startswith("text/css")
        for name in ("index.html", "..%2Fapp.py", "missing.js"):
            response = client.get(f"/demo/static/{name}")
            assert response.status_code == 404 and response.json()["code"] == "not_found", name


def test_demo_page_signs_up_enrols_and_translates_live_speech(gateway_settings, browser):
    with gateway_in_thread(gateway_settings) as (base, _):
        browser.get(f"{base}/demo")
        browser.find_element(By.ID, "username").send_keys("demo-user")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "signup").click()
        wait_for(browser, lambda s: "demo-user" in s["who"] or s["alert"], 20, "the signed-in user")

        browser.find_element(By.ID, "consent").click()
        browser.find_element(By.ID, "enrol").click()
        state = wait_for(browser, lambda s: s["profiles"] or s["alert"], 60, "an enrolled profile")
        assert state["profiles"] and not state["alert"], state

        Select(browser.find_element(By.ID, "source")).select_by_value("en")  # the recording is English
        Select(browser.find_element(By.ID, "target")).select_by_value("en")
        browser.find_element(By.ID, "start").click()
        state = wait_for(
            browser,
            lambda s: (any(u["transcript"] and u["translation"] for u in s["utterances"])
                       and s["metrics"] and s["audioChunks"]) or s["alert"],
            90, "a transcript, its translation, its metrics and played audio",
        )
        assert not state["alert"] and not state["events"], state
        answered = [u for u in state["utterances"] if u["translation"]]
        assert all(u["translation"] == u["transcript"] for u in answered), answered  # en -> en: passthrough

        browser.find_element(By.ID, "stop").click()
        wait_for(browser, lambda s: "ended" in s["status"], 30, "the stream ended")
        browser.save_screenshot(str(SCREENSHOT))

    problems = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert problems == [], problems
