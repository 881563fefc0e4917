"""The admin's streams page: staff see every consumer group, topic and DLQ as Kafka says (members,
committed offsets, lag; leaders, replicas, in-sync replicas), refreshed live; nobody else sees
it, and a Kafka that does not answer is said, not hidden."""
import pytest
from playwright.sync_api import expect

from polystack.ops import streams
from polystack.streaming.topics import TODO_EVENTS, resolve
from tests.factories import PASSWORD
from tests.helpers import free_port, produce
from tests.web.conftest import browser  # noqa: F401  (the fixture, found by name)

__all__ = ["browser"]


@pytest.fixture
def staff(user_factory):
    return user_factory(username="operator", is_staff=True)


def group_of(data: dict, group_id: str) -> dict:
    return next(g for g in data["groups"] if g["groupId"] == group_id)


def test_staff_see_each_groups_lag_and_each_topics_replicas(client, staff, event_topics):
    todo_events = resolve(TODO_EVENTS)
    produce(todo_events, [b"{}"] * 3)  # nothing read them: the projection group is 3 behind on this test's topics
    client.force_login(staff)

    page = client.get("/admin/streams/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "projection-group" in html and todo_events in html and resolve("todo-events-dlq") in html

    data = client.get("/admin/streams/?format=json").json()
    projection = group_of(data, "projection-group")
    assert projection["lag"] == 3 and sum(p["end"] for p in projection["partitions"]) == 3
    assert {p["topic"] for p in projection["partitions"]} == {todo_events}
    assert all(p["committed"] is None for p in projection["partitions"])
    assert {d["topic"] for d in data["dlqs"]} >= {resolve("todo-events-dlq"), resolve("device-sync-events-dlq")}
    topic = next(t for t in data["topics"] if t["name"] == todo_events)
    assert topic["held"] == 3 and topic["underReplicated"] == 0
    assert all(p["leader"] is not None and p["inSync"] == p["replicas"] for p in topic["partitions"])

    group = client.get("/admin/streams/groups/projection-group/?format=json").json()["group"]
    assert group["lag"] == 3
    assert client.get("/admin/streams/groups/projection-group/").status_code == 200
    detail = client.get(f"/admin/streams/topics/{todo_events}/?format=json").json()["topic"]
    assert len(detail["partitions"]) == len(topic["partitions"])
    assert client.get(f"/admin/streams/topics/{todo_events}/").status_code == 200


def test_only_staff_see_it_and_only_our_groups_and_topics(client, user_factory, staff, event_topics):
    assert client.get("/admin/streams/").status_code == 302, "anonymous: to the admin's sign-in"
    client.force_login(user_factory())
    assert client.get("/admin/streams/").status_code == 302, "signed in, not staff: the same"
    client.force_login(staff)
    assert client.get("/admin/streams/groups/somebody-elses-group/").status_code == 404
    assert client.get("/admin/streams/topics/__consumer_offsets/").status_code == 404
    assert client.get(f"/admin/streams/topics/{resolve(TODO_EVENTS)}%00/").status_code == 404
    assert client.post("/admin/streams/").status_code == 405


def test_a_kafka_that_does_not_answer_is_said(client, staff, settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{free_port()}"  # nothing listens there
    streams.admin_client.cache_clear()
    try:
        client.force_login(staff)
        answer = client.get("/admin/streams/?format=json")
        assert answer.status_code == 503 and answer.json()["error"].startswith("Kafka does not answer")
        page = client.get("/admin/streams/")
        assert page.status_code == 503 and "Kafka does not answer" in page.content.decode()
    finally:
        streams.admin_client.cache_clear()


def test_the_page_refreshes_itself(web, staff, browser, event_topics):  # noqa: F811
    todo_events = resolve(TODO_EVENTS)
    page = browser.new_context(locale="en-US", timezone_id="UTC").new_page()
    page.goto(f"{web}/admin/streams/groups/projection-group/")
    page.get_by_label("Username").fill("operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#lag")).to_have_text("0")
    produce(todo_events, [b"{}"] * 4)
    expect(page.locator("#lag")).to_have_text("4", timeout=20_000)  # no reload: the page read itself again
