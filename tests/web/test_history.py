"""A todo's history on the page (time travel): its events in order with who did what, when and
what changed, a slider that shows the todo at any version beside what it is now, and deleted
todos looked back at from the Deleted view."""
import pytest
from playwright.sync_api import expect

from tests.helpers import unique, wait_until
from tests.web.conftest import screenshot_path, sign_in


@pytest.fixture
def system(synced, roles):
    roles("runconsumer", "projections", "--group-id", unique("projection"))  # the history's reads
    return synced


@pytest.fixture
def alice(user_factory):
    return user_factory(username="alice")


def test_the_history_panel_travels_through_versions_and_outlives_the_todo(system, alice, browser, tmp_path):
    page = sign_in(browser, system, "alice")
    page.get_by_label("New todo").fill("Draft the plan")
    page.get_by_role("button", name="Add todo").click()
    expect(page.locator("li.todo.pending")).to_have_count(0, timeout=15_000)
    item = page.locator("li.todo", has_text="Draft the plan")
    item.get_by_role("button", name="Edit Draft the plan").click()
    page.locator("#edit-title-input").fill("Final plan")
    page.get_by_role("button", name="Save").click()
    item = page.locator("li.todo", has_text="Final plan")
    expect(page.locator("li.todo.pending")).to_have_count(0, timeout=15_000)
    item.get_by_label("Priority of Final plan").select_option("urgent")
    expect(page.locator("li.todo.pending")).to_have_count(0, timeout=15_000)
    wait_until(lambda: page.request.get(f"{system}/api/todos/").json()["results"][0]["priority"] == "urgent",
               what="the last change projected")

    item.get_by_role("button", name="History of Final plan").click()
    dialog = page.locator("#history")
    expect(dialog).to_be_visible()
    events = dialog.locator("#history-events > li")
    expect(events).to_have_count(3, timeout=15_000)
    expect(events.nth(0)).to_contain_text("v1 TodoCreated · by alice")
    expect(events.nth(1)).to_contain_text("Title: Draft the plan → Final plan")
    expect(events.nth(2)).to_contain_text("Priority: medium → urgent")
    expect(dialog.locator("#history-version-shown")).to_have_text("3 of 3")

    dialog.locator("#history-version").fill("1")  # the slider, moved to the first version
    expect(dialog.locator("#history-version-shown")).to_have_text("1 of 3")
    title = dialog.locator("#history-state tr", has_text="Title")
    expect(title).to_have_class("differs")
    expect(title).to_contain_text("Draft the plan")
    expect(title).to_contain_text("Final plan")
    expect(dialog.locator("#history-state tr", has_text="Description")).not_to_have_class("differs")
    expect(events.nth(0)).to_have_class("current")
    page.screenshot(path=str(screenshot_path(tmp_path, "history-panel.png")))
    dialog.get_by_role("button", name="Close").click()

    page.once("dialog", lambda confirm: confirm.accept())
    item.get_by_role("button", name="Delete Final plan").click()
    expect(page.locator("li.todo", has_text="Final plan")).to_have_count(0, timeout=15_000)
    page.locator("#view").select_option("deleted")
    gone = page.locator("li.todo", has_text="Final plan")
    expect(gone).to_contain_text("deleted", timeout=15_000)
    gone.get_by_role("button", name="History of Final plan").click()
    expect(events).to_have_count(4, timeout=15_000)
    expect(events.nth(3)).to_contain_text("v4 TodoDeleted")
    dialog.locator("#history-version").fill("2")
    expect(dialog.locator("#history-state tr", has_text="Deleted")).to_have_class("differs")
