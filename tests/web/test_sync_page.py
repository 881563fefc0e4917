"""Two devices of one user converge: the page in a real Chromium (a sync client keeping its copy
in IndexedDB) and the terminal client (`manage.py syncclient`, its replica in SQLite), with
edits made on the page while the browser is offline (`context.set_offline(True)`) and on the
terminal while it is not connected; against the real web, relay, coordinator and sink."""
import pytest
from playwright.sync_api import expect

from tests.helpers import wait_until
from tests.realtime.test_sockets import token
from tests.sync.test_syncclient import Terminal
from tests.web.conftest import sign_in


@pytest.fixture
def alice(user_factory):
    """Alice and her API token, made before the browser starts (no ORM under Playwright)."""
    return token(user_factory(username="alice"))


def titles(page) -> dict[str, bool]:
    """{title: completed} of the todos the page lists."""
    items = page.locator("li.todo")
    return {items.nth(n).locator(".title").inner_text(): "done" in (items.nth(n).get_attribute("class") or "")
            for n in range(items.count())}


def listed(terminal) -> dict[str, bool]:
    """{title: completed} of the terminal's list (after the id: `** [x] Title (priority)`)."""
    return {rest[7:].rsplit(" (", 1)[0]: rest[4] == "x" for rest in terminal.listed().values()}


def synced_until(terminal, expected: dict[str, bool]) -> None:
    """Sync the terminal until it lists `expected`: what the page pushed is confirmed before the
    sink has stored it for the other devices (eventual consistency), so one sync may come early."""
    wait_until(lambda: terminal.run("sync") and listed(terminal) == expected, timeout=30,
               what=f"the terminal to list {expected}")


def test_the_page_and_the_terminal_converge_through_offline_edits(synced, alice, browser, tmp_path):
    terminal = Terminal("laptop", web=synced, key=alice, state_dir=tmp_path / "devices")
    terminal.run("sync")
    page = sign_in(browser, synced, "alice")

    page.get_by_label("New todo").fill("Buy milk")
    page.get_by_role("button", name="Add todo").click()
    expect(page.locator("li.todo", has_text="Buy milk")).to_be_visible()
    expect(page.locator("#connection")).to_have_text("Live", timeout=15_000)  # pushed and confirmed
    synced_until(terminal, {"Buy milk": False})

    # The browser goes offline: its edits wait in IndexedDB, shown at once, counted.
    page.context.set_offline(True)
    expect(page.locator("#connection")).to_contain_text("Offline")
    page.get_by_label("New todo").fill("Written offline")
    page.get_by_role("button", name="Add todo").click()
    page.locator("li.todo", has_text="Buy milk").get_by_label("Buy milk", exact=True).check()
    expect(page.locator("#connection")).to_contain_text("2 changes waiting")
    expect(page.locator("li.todo.pending", has_text="Written offline")).to_be_visible()

    # Meanwhile the terminal, offline too, adds and renames; then it syncs.
    milk = next(prefix for prefix, line in terminal.listed().items() if "Buy milk" in line)
    terminal.run("add", "From the terminal")
    terminal.run("edit", milk, "--title", "Buy oat milk")
    terminal.run("sync")

    page.context.set_offline(False)
    expect(page.locator("#connection")).to_have_text("Live", timeout=20_000)
    expected = {"Buy oat milk": True, "Written offline": False, "From the terminal": False}
    expect(page.locator("li.todo")).to_have_count(3, timeout=15_000)
    expect(page.locator("li.todo.done", has_text="Buy oat milk")).to_be_visible(timeout=15_000)
    assert titles(page) == expected
    synced_until(terminal, expected)

    # Reloaded, the page starts from its copy (IndexedDB kept it) and stays in step.
    page.reload()
    expect(page.locator("#connection")).to_have_text("Live", timeout=15_000)
    expect(page.locator("li.todo")).to_have_count(3)
    assert titles(page) == expected


def test_two_tabs_of_one_browser_are_one_device_and_lose_no_change(synced, alice, browser):
    """Tabs share IndexedDB, so one device id: their changes are numbered in one sequence."""
    first = sign_in(browser, synced, "alice")
    second = first.context.new_page()
    second.goto(f"{synced}/todos/")
    expect(second.locator("#connection")).to_have_text("Live", timeout=15_000)
    for n in range(3):
        first.get_by_label("New todo").fill(f"first tab {n}")
        first.get_by_role("button", name="Add todo").click()
        second.get_by_label("New todo").fill(f"second tab {n}")
        second.get_by_role("button", name="Add todo").click()
    for page in (first, second):
        expect(page.locator("li.todo:not(.pending)")).to_have_count(6, timeout=20_000)
    assert sorted(titles(first)) == sorted(titles(second)) == sorted(
        [f"first tab {n}" for n in range(3)] + [f"second tab {n}" for n in range(3)])


KEPT = "async () => navigator.serviceWorker.controller !== null && !!(await caches.match('/todos/'))"


def test_the_page_opens_with_no_network_and_pushes_what_was_done_meanwhile(synced, web_role, alice, browser):
    """Reloaded with the server gone and the browser offline, the page opens from what its
    service worker kept and its todos from IndexedDB; a change made then is pushed when the
    server is back. Signing out drops the kept page."""
    page = sign_in(browser, synced, "alice")
    page.get_by_label("New todo").fill("Before the outage")
    page.get_by_role("button", name="Add todo").click()
    expect(page.locator("li.todo:not(.pending)", has_text="Before the outage")).to_be_visible(timeout=15_000)
    page.wait_for_function(KEPT, timeout=15_000)

    web_role.stop()  # no server at all: the worker's own fetches fail too, not only the page's
    page.context.set_offline(True)
    page.reload()
    expect(page.locator("#connection")).to_contain_text("Offline")
    expect(page.locator("li.todo", has_text="Before the outage")).to_be_visible()
    page.get_by_label("New todo").fill("Written with no server")
    page.get_by_role("button", name="Add todo").click()
    expect(page.locator("#connection")).to_contain_text("1 change waiting")

    web_role.start()
    page.context.set_offline(False)
    expect(page.locator("#connection")).to_have_text("Live", timeout=20_000)
    expect(page.locator("li.todo.pending")).to_have_count(0, timeout=15_000)
    elsewhere = sign_in(browser, synced, "alice")  # another browser: what the server holds
    expect(elsewhere.locator("li.todo")).to_have_count(2, timeout=15_000)
    assert set(titles(elsewhere)) == {"Before the outage", "Written with no server"}

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_function("async () => !(await caches.match('/todos/'))", timeout=15_000)


def test_the_service_worker_keeps_the_assets_the_page_loads(client, user_factory):
    """/sw.js is served to anyone (it holds nothing private), never from a stale HTTP cache, and
    names the page and exactly the stylesheet and scripts that page loads."""
    import json
    import re

    worker = client.get("/sw.js")
    assert worker.status_code == 200 and worker["Content-Type"].startswith("text/javascript")
    assert worker["Cache-Control"] == "no-cache"
    shell = json.loads(re.match(r"const SHELL = (.*);\n", worker.content.decode()).group(1))
    client.force_login(user_factory())
    page = client.get(shell["page"]).content.decode()
    loaded = set(re.findall(r'(?:src|href)="(/static/[^"]+)"', page))
    assert set(shell["assets"]) == loaded, "an asset the page loads and the worker does not keep breaks it offline"
