"""The browser the web tests drive: Debian's Chromium, headless, through Playwright."""
import os
import shutil

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.factories import PASSWORD
from tests.helpers import wait_until

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def browser():
    assert os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM}: make test installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def sign_in(browser, base: str, username: str, **context):
    """A new browser context (`context`: Playwright's options, a phone's viewport...) signed in."""
    page = browser.new_context(locale="en-US", timezone_id="UTC", **context).new_page()  # dates read the same everywhere
    page.goto(f"{base}/todos/")
    expect(page).to_have_url(f"{base}/login/?next=/todos/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/todos/")
    expect(page.locator("#connection")).to_have_text("Live", timeout=15_000)
    return page


def projected(page, base: str, title: str) -> None:
    """Wait until the projection (what the history reads) has the todo: the page shows it from its
    sync copy before that."""
    wait_until(lambda: any(t["title"] == title for t in page.request.get(f"{base}/api/todos/").json()["results"]),
               what=f"“{title}” projected")


def screenshot_path(tmp_path, name: str):
    """The README's pictures are these screenshots: UPDATE_SCREENSHOTS=1 writes them to
    docs/screenshots/; otherwise they go to the test's folder (a test run changes no file)."""
    import os
    from pathlib import Path

    if os.environ.get("UPDATE_SCREENSHOTS") != "1":
        return tmp_path / name
    folder = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


# The page is a sync client: its tests start the sync path as the sync tests do.
from tests.sync.conftest import sync, synced  # noqa: E402,F401  (fixtures, found by name)

__all__ = ["sync", "synced"]
