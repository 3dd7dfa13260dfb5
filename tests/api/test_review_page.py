"""The review page in a real headless Chromium, against the real API served by uvicorn on
loopback over an embedded catalog: a moderator overturns a wrong match, and the catalog and
later checks follow the verdict.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); without them the
test skips. ``VDUP_SCREENSHOTS=1`` writes the two screenshots to docs/images/ (the README's
pictures); otherwise they go to the test's tmp_path.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from support import REPO
from support.fileserver import serve_files
from support.media import make_video
from vdup.api.app import create_app
from vdup.settings import Settings

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHECK_KEY = "ck"
MOD_KEY = "mk"
#: Screenshots for the docs stay small: PNG bytes at most.
MAX_SCREENSHOT_BYTES = 200_000


@pytest.fixture
def browser(monkeypatch):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            f"no {CHROMIUM} or {CHROMEDRIVER}: apt-get install chromium chromium-driver "
            "(.ci/run does) to run the review page in a browser"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install -e '.[test]'")
    # Selenium Manager would look for drivers on the network first; Debian's driver matches
    monkeypatch.setenv("SE_OFFLINE", "true")
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1200,800",
        "--hide-scrollbars",
        "--force-device-scale-factor=0.8",  # the screenshots: 960 px wide, < 200 KB
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def api(tmp_path) -> Iterator[str]:
    """The real app under uvicorn on a free loopback port; yields its base URL."""
    settings = Settings(
        data_dir=tmp_path / "data",
        api_keys=[f"checker:{CHECK_KEY}"],
        moderator_keys=[f"mod:{MOD_KEY}"],
        fetch_allow=["127.0.0.1"],
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings), log_level="warning", ws="none", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive(), "the API did not start (see the log above)"
        assert time.monotonic() < deadline, "the API did not start within 120 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def wait_for(driver, script: str, timeout_s: float = 30.0, what: str = ""):
    """Poll ``script`` (JavaScript returning a value) until it is truthy; return that value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = driver.execute_script(script)
        if value:
            return value
        if time.monotonic() > deadline:
            message = driver.execute_script(
                "const m = document.getElementById('message'); return m && m.textContent"
            )
            raise AssertionError(f"timed out waiting for {what or script}; page says: {message!r}")
        time.sleep(0.1)


def item_js(video_id: str) -> str:
    return f"document.querySelector('article.item[data-video-id=\"{video_id}\"]')"


def thumbs_loaded(driver, video_id: str) -> list[int]:
    """naturalWidth of each thumbnail of the item, once all have loaded (else falsy)."""
    return wait_for(
        driver,
        f"""const item = {item_js(video_id)};
        if (!item) return null;
        const imgs = [...item.querySelectorAll('img.thumb')];
        if (!imgs.length || imgs.some(i => i.dataset.state === 'loading')) return null;
        return imgs.map(i => i.naturalWidth);""",
        what=f"the thumbnails of {video_id}",
    )


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    folder = REPO / "docs" / "images" if os.environ.get("VDUP_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size < MAX_SCREENSHOT_BYTES, f"{path} is {path.stat().st_size} bytes"
    return path


def test_a_moderator_overturns_a_match_and_later_checks_follow(browser, api, tmp_path):
    original = make_video(1)
    copy = make_video(1, crop=0.1, start_s=1.0, duration_s=3.0)  # cropped, trimmed, re-encoded
    recopy = make_video(1, crop=0.1, start_s=1.0, duration_s=3.0, audio_seed=31)  # new sound
    files = {"/v/orig.mp4": original, "/v/copy.mp4": copy, "/v/recopy.mp4": recopy}
    checker = {"Authorization": f"Bearer {CHECK_KEY}"}
    with serve_files(files) as served, httpx.Client(base_url=api, timeout=120) as http:

        def check(name: str) -> dict:
            r = http.post(
                "/check-video-duplicate",
                json={"link": f"{served.base}/v/{name}.mp4"},
                headers=checker,
            )
            assert r.status_code == 200, r.text
            return r.json()

        # (1) an original, then its edited copy: the copy is matched to it
        assert check("orig")["is_duplicate"] is False
        first = check("copy")
        assert first["is_duplicate"] is True and first["duplicate_for"] == "orig", first

        # (2) the page: without a key, and with a key of the wrong role, it says so
        browser.get(f"{api}/review")
        wait_for(
            browser,
            "const m = document.getElementById('message');"
            "return m.dataset.kind === 'error' && m.textContent.includes('401')",
            what="the 401 message",
        )
        key = browser.find_element("id", "api-key")
        key.send_keys(CHECK_KEY)
        browser.find_element("id", "save-key").click()
        wait_for(
            browser,
            "return document.getElementById('message').textContent.includes('moderate role')",
            what="the 403 message",
        )
        key.clear()
        key.send_keys(MOD_KEY)
        browser.find_element("id", "save-key").click()
        widths = thumbs_loaded(browser, "copy")
        assert len(widths) >= 2 and all(w > 0 for w in widths), widths
        item = browser.find_element("css selector", 'article.item[data-video-id="copy"]')
        assert item.find_element("css selector", ".matched-video").text == "orig"
        assert item.find_element("css selector", ".path").text in ("visual", "visual_audio")
        assert browser.find_elements("css selector", 'article.item[data-video-id="orig"]') == []
        screenshot(browser, tmp_path, "review-queue.png")

        # (3) "Not a duplicate", with a note
        item.find_element("css selector", "input.note").send_keys("different take of the scene")
        item.find_element("css selector", "button.not-duplicate").click()
        wait_for(
            browser,
            f"return {item_js('copy')}.querySelector('.record').dataset.rootId === 'copy'",
            what="the corrected record",
        )
        assert item.get_attribute("data-verdict") == "not_duplicate"

        # (4) reloaded, the item shows the verdict and the corrected record
        browser.get(f"{api}/review?status=all")
        wait_for(
            browser,
            f"const i = {item_js('copy')}; return i && i.dataset.verdict === 'not_duplicate' && "
            "i.querySelector('.record').dataset.isDuplicate === 'false'",
            what="the verdict after a reload",
        )
        item = browser.find_element("css selector", 'article.item[data-video-id="copy"]')
        assert item.find_element("css selector", ".record").get_attribute("data-root-id") == "copy"
        assert "not a duplicate" in item.find_element("css selector", ".verdict").text
        assert "different take" in item.find_element("css selector", ".verdict").text
        thumbs_loaded(browser, "copy")
        screenshot(browser, tmp_path, "review-verdict.png")
        record = http.get("/videos/copy", headers=checker).json()
        assert record["is_duplicate"] is False and record["root_id"] == "copy", record

        # (5) another copy of that content is no longer matched to the overturned original
        later = check("recopy")
        assert later["is_duplicate"] is True and later["duplicate_for"] != "orig", later

        # and "Duplicate of…" asks for the original, the matched video by default
        browser.get(f"{api}/review")
        thumbs_loaded(browser, "recopy")
        item = browser.find_element("css selector", 'article.item[data-video-id="recopy"]')
        item.find_element("css selector", "button.duplicate-of").click()
        prompt = browser.switch_to.alert
        assert "recopy" in prompt.text
        prompt.send_keys(later["matched_video"])
        prompt.accept()
        wait_for(
            browser,
            f"return {item_js('recopy')}.dataset.verdict === 'duplicate_of'",
            what="the duplicate_of verdict",
        )
        assert later["matched_video"] in item.find_element("css selector", ".verdict").text

    problems = [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
    ]
    assert problems == [], problems  # no script errors, no Content-Security-Policy refusals


def test_the_api_reference_renders_in_a_browser_without_a_network(browser, api):
    browser.get(f"{api}/docs")
    operations = wait_for(
        browser,
        "return document.querySelectorAll('.opblock').length",
        what="Swagger UI's operations",
    )
    assert operations >= 5
    assert "vdup" in browser.find_element("css selector", ".info .title").text
    assert browser.find_elements("css selector", ".errors-wrapper") == []
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe
