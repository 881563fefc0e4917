"""The page shows the user's open sync conflicts with both values, resolves one with the
value chosen, and keeps the conflict policy (a real Chromium on the web role)."""
import pytest
from playwright.sync_api import expect

from apps.sync.conflicts import MANUAL
from apps.sync.models import SyncSettings
from apps.todos import services
from tests.sync.test_mutations import NOW, Phones
from tests.web.conftest import sign_in


@pytest.fixture
def a_conflict(user_factory):
    """Alice's laptop and phone renamed one todo concurrently, under the manual policy. Made
    before the browser starts (no ORM under Playwright)."""
    alice = user_factory(username="alice")
    SyncSettings.objects.create(user=alice, conflict_policy=MANUAL)
    todo = services.todo_create(actor=alice, title="Paint", correlation_id="c").todo_id
    phones = Phones(alice, ["laptop", "phone"])
    phones.push("laptop", "update", todo, base=1, at=NOW - 2000, title="Paint blue")
    phones.push("phone", "update", todo, base=1, at=NOW - 1000, title="Paint red")


def test_a_conflict_is_resolved_on_the_page_and_the_policy_kept(web, a_conflict, browser):
    page = sign_in(browser, web, "alice")
    expect(page.locator("#conflict-policy")).to_have_value("manual")
    row = page.locator("#conflict-list li")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("title")
    page.get_by_role("button", name="Use “Paint red” as the title of").click()
    expect(page.locator("#conflict-list li")).to_have_count(0)
    expect(page.locator("#conflicts-empty")).to_be_visible()
    expect(page.locator("#message")).to_contain_text("title is now “Paint red”")

    page.locator("#conflict-policy").select_option("merge")
    expect(page.locator("#message")).to_contain_text("Conflict setting saved.")
    page.reload()
    expect(page.locator("#conflict-policy")).to_have_value("merge")
