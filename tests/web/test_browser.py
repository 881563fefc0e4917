"""The web page in a real headless Chromium (Debian's package, driven by Playwright), on the
real web role, relay, consumers, SMTP server, Kafka, PostgreSQL and Redis."""
import re
import uuid

import pytest
from playwright.sync_api import expect

from apps.todos.models import Team
from tests.helpers import unique, wait_until
from tests.web.conftest import sign_in


@pytest.fixture
def system(synced, roles, notifier):
    """The page's whole path: web, relay, the sync coordinator and sink (the page is a sync
    client), the projection (the REST API's reads), notifications."""
    roles("runconsumer", "projections", "--group-id", unique("projection"))
    notifier()
    return synced


@pytest.fixture
def people(user_factory):
    """Alice and Bob in one team. Made before the browser starts: the ORM is not used while
    Playwright's loop runs in this thread (a connection opened then would outlive the test)."""
    alice = user_factory(username="alice", email="alice@example.test")
    bob = user_factory(username="bob", email="bob@example.test")
    team = Team.objects.create(name="Platform", owner=alice)
    team.members.add(alice, bob)


def test_an_assignment_reaches_the_other_users_open_page_feed_and_mailbox(system, people, smtp, browser):
    a = sign_in(browser, system, "alice")
    b = sign_in(browser, system, "bob")

    a.get_by_label("New todo").fill("Review the relay")
    a.get_by_role("button", name="Add todo").click()
    item = a.locator("li.todo", has_text="Review the relay")
    expect(item).to_be_visible()
    expect(a.locator("li.todo.pending")).to_have_count(0, timeout=15_000)  # on the server, and back
    expect(b.locator("li.todo", has_text="Review the relay")).to_have_count(0)  # personal: not bob's

    item.get_by_label("Assignee of Review the relay").select_option(label="bob")
    # It arrives live, without a reload; how fast is `make bench`'s business (fanout: command to frame).
    mine = b.locator("li.todo", has_text="Review the relay")
    expect(mine).to_be_visible(timeout=15_000)
    expect(mine).to_contain_text("assigned to you")

    expect(b.locator("#unread")).to_have_text("1", timeout=15_000)
    expect(b.locator("#feed-list")).to_contain_text("alice assigned you “Review the relay”")
    wait_until(lambda: smtp.messages, what="the email at the SMTP server")
    (recipients, email), = smtp.messages
    assert recipients == ["bob@example.test"]

    # Alice gives it a due date: both pages show it, with the default reminders (a day and an hour before).
    item.get_by_label("Due date of Review the relay").fill("2030-01-02T10:00")
    expect(mine).to_contain_text("due Jan 2, 2030", timeout=15_000)
    expect(mine).to_contain_text("2 reminders")
    expect(item).to_contain_text("2 reminders")

    # Bob completes it from his page; alice's page follows without a reload.
    mine.get_by_label("Review the relay", exact=True).check()
    expect(a.locator("li.todo.done", has_text="Review the relay")).to_be_visible(timeout=15_000)
    expect(a.locator("#unread")).to_have_text("1", timeout=15_000)  # "bob completed your todo"
    b.locator("#feed-list").get_by_role("button", name=re.compile(r"^Mark .* read$")).click()
    expect(b.locator("#unread")).to_have_text("0")


def test_the_page_catches_up_after_a_reconnect(system, people, browser):
    a = sign_in(browser, system, "alice")
    b = sign_in(browser, system, "bob")
    a.get_by_label("New todo").fill("Gap test")
    a.get_by_label("Team", exact=True).select_option(label="Platform")
    a.get_by_role("button", name="Add todo").click()
    expect(b.locator("li.todo", has_text="Gap test")).to_be_visible(timeout=10_000)

    # A lost connection: the page shows it, reconnects from its position and catches up.
    b.evaluate("sync.socket.close()")
    expect(b.locator("#connection")).to_contain_text("Connecting")
    item = a.locator("li.todo", has_text="Gap test")
    item.get_by_role("button", name="Edit Gap test").click()
    a.get_by_label("Title").fill("Gap filled")
    a.get_by_role("button", name="Save").click()
    a.locator("li.todo", has_text="Gap filled").get_by_label("Gap filled", exact=True).check()
    expect(b.locator("#connection")).to_have_text("Live", timeout=15_000)
    expect(b.locator("li.todo.done", has_text="Gap filled")).to_be_visible(timeout=10_000)


@pytest.fixture
def alice_owns_a_team(user_factory):
    """Alice owns a team of one; Carol exists (made before the browser starts, as above)."""
    alice = user_factory(username="alice")
    user_factory(username="carol")
    team = Team.objects.create(name="Platform", owner=alice)
    team.members.add(alice)


def test_a_team_is_joined_by_accepting_an_invitation_on_the_page_and_left_there(synced, alice_owns_a_team,
                                                                                browser):
    """Alice invites Carol by name; Carol sees the invitation, accepts, sees the team's todo
    (made before she joined: no event of it ever named her); then she leaves and it is gone
    from her page."""
    web = synced

    a = sign_in(browser, web, "alice")
    a.get_by_label("New todo").fill("Team plans")
    a.get_by_label("Team", exact=True).select_option(label="Platform")
    a.get_by_role("button", name="Add todo").click()
    expect(a.locator("li.todo", has_text="Team plans")).to_be_visible()
    # On the server and back: a member who joins gets the team's todos as the sync sink holds them
    # (one still on its way follows when the sink has it: README, Phase 5).
    expect(a.locator("li.todo.pending")).to_have_count(0, timeout=15_000)
    a.get_by_label("Invite someone to Platform").fill("carol")
    a.get_by_role("button", name="Invite").click()
    expect(a.locator("#message")).to_contain_text("they are invited")

    c = sign_in(browser, web, "carol")
    expect(c.locator("li.todo", has_text="Team plans")).to_have_count(0)
    c.get_by_role("button", name="Accept the invitation to Platform").click()
    expect(c.locator("li.todo", has_text="Team plans")).to_be_visible(timeout=10_000)
    expect(c.locator("#team-list")).to_contain_text("alice, carol")

    c.get_by_role("button", name="Leave Platform").click()
    expect(c.locator("li.todo", has_text="Team plans")).to_have_count(0, timeout=10_000)
    expect(c.locator("#team-list")).not_to_contain_text("Platform")


@pytest.fixture
def alice_was_reminded(user_factory):
    """Alice's todo with a due date, and the in-app reminder she got of it (made before the browser starts)."""
    from datetime import timedelta

    from django.utils import timezone

    from apps.notifications.models import IN_APP, REMINDER, Notification
    from apps.todos.services import todo_create

    alice = user_factory(username="alice")
    todo = todo_create(actor=alice, title="Book the flights", due_date=timezone.now() + timedelta(days=2),
                       correlation_id="c")
    Notification.objects.create(recipient=alice, event_id=uuid.uuid4(), event_type="ReminderDue", category=REMINDER,
                                channel=IN_APP, todo_id=todo.todo_id, subject="Reminder: “Book the flights” is due",
                                body="b", status="sent")


def test_an_in_app_reminder_is_snoozed_from_the_feed(web, alice_was_reminded, browser):
    a = sign_in(browser, web, "alice")
    expect(a.locator("#feed-list")).to_contain_text("Book the flights")
    a.get_by_role("button", name="Snooze “Reminder: “Book the flights” is due” for an hour").click()
    expect(a.locator("#message")).to_contain_text("You will be reminded again at")
