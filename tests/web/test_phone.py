"""The page is also the phone client (Phase 5): on a 390 px wide screen every page — todos,
history, the dashboard, devices, conflicts — fits the screen: nothing wider than it, the bar's
buttons on one line each."""
import pytest
from playwright.sync_api import expect

from tests.helpers import unique
from tests.web.conftest import projected, sign_in

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}

# Visible elements whose right edge passes the screen's (a horizontal scroll bar on a phone).
WIDER_THAN_THE_SCREEN = """() => [...document.querySelectorAll('body *')].filter((node) => {
  const box = node.getBoundingClientRect();
  return box.width > 0 && box.height > 0 && getComputedStyle(node).visibility !== 'hidden'
    && box.right > document.documentElement.clientWidth + 0.5;
}).map((node) => node.tagName.toLowerCase() + (node.id ? '#' + node.id : '') + (node.className ? '.' + node.className : ''))"""


@pytest.fixture
def system(synced, roles):
    roles("runconsumer", "projections", "--group-id", unique("projection"))
    return synced


@pytest.fixture
def alice(user_factory):
    return user_factory(username="alice")


def fits(page, where: str) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, where
    assert page.evaluate(WIDER_THAN_THE_SCREEN) == [], where
    for button in page.locator("header.bar button:visible").all():
        assert button.bounding_box()["height"] < 44, f"{where}: “{button.inner_text()}” wraps"


def test_every_page_reads_and_works_at_phone_width(system, alice, browser):
    page = sign_in(browser, system, "alice", **PHONE)
    fits(page, "the todo page")
    page.get_by_label("New todo").fill("Buy a phone case with a rather long name that has to wrap somewhere")
    page.get_by_role("button", name="Add todo").click()
    expect(page.locator("li.todo.pending")).to_have_count(0, timeout=15_000)
    fits(page, "the todo page with a todo")
    for section in ("#device-list", "#conflict-policy", "#team-list"):  # devices, conflicts, teams
        page.locator(section).scroll_into_view_if_needed()
        fits(page, section)

    projected(page, system, "Buy a phone case with a rather long name that has to wrap somewhere")
    page.locator("li.todo").get_by_role("button", name="History of Buy a phone case", exact=False).click()
    expect(page.locator("#history-events > li")).to_have_count(1, timeout=15_000)
    fits(page, "the history panel")
    page.locator("#history").get_by_role("button", name="Close").click()

    page.goto(f"{system}/analytics/")
    expect(page.locator("h1")).to_be_visible()
    fits(page, "the dashboard")
