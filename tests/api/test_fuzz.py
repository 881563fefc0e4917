"""Every operation of the REST API, from its own OpenAPI schema, fed hostile input: no answer
is a 5xx, and a refused request leaves no event in the outbox. New endpoints are fuzzed as soon
as they appear in the schema."""
import json
import re
import uuid
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from apps.todos.models import OutboxEvent, Team
from tests.helpers import api_client

HOSTILE = st.sampled_from([
    "", " ", "²", "٣", "\x00", "a\x00b", "-" * 36, "a" * 36, "9" * 30, "-1", "0", "1e309", "NaN", "null", "true",
    "<script>alert(1)</script>", "' OR 1=1 --", "../../etc/passwd", "x" * 6000, "9999-99-99T99:99:99Z",
    "2026-02-30T00:00:00Z", "00000000-0000-0000-0000-000000000000", "\u202e", "😀" * 100,
])
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | HOSTILE | st.text(max_size=30))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                              max_size=3), max_leaves=8)


def operations(schema: dict) -> list[tuple[str, str, dict]]:
    return [(path, method.upper(), spec) for path, methods in sorted(schema["paths"].items())
            for method, spec in sorted(methods.items()) if method in {"get", "post", "put", "patch", "delete"}]


def body_fields(schema: dict, spec: dict) -> list[str]:
    content = spec.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    ref = content.get("$ref", "")
    resolved = schema["components"]["schemas"].get(ref.rsplit("/", 1)[-1], content) if ref else content
    return sorted(resolved.get("properties", {}))


@pytest.fixture
def api(user_factory, settings):
    settings.READ_YOUR_WRITES_TIMEOUT_S = 0  # commands answer 202 at once: no projection runs here
    alice, bob = user_factory(username="alice"), user_factory(username="bob")
    client = api_client(alice)
    team = Team.objects.create(name="t", owner=alice)
    team.members.add(alice)
    todo = client.post("/api/todos/", {"title": "mine"}, format="json").json()["id"]
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    return client, schema, {"id": [todo, str(team.id), str(uuid.uuid4())], "user_id": [str(bob.pk)]}


def fill(path: str, real: dict, draw) -> str:
    def one(match):
        name = match.group(1)
        known = real.get("user_id" if name in ("user_id", "userId") else "id", [])
        return quote(draw(st.sampled_from(known) | HOSTILE | st.text(max_size=40)) if known else draw(HOSTILE), safe="")
    return re.sub(r"\{(\w+)\}", one, path)


@pytest.mark.django_db(transaction=True)
def test_no_input_makes_the_api_answer_5xx_or_write_an_event_it_refused(api):
    client, schema, real = api
    ops = operations(schema)
    assert len(ops) >= 15, "the schema lists the API's operations"

    @hypothesis_settings(max_examples=250, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def probe(data):
        path, method, spec = data.draw(st.sampled_from(ops))
        url = fill(path, real, data.draw)
        fields = body_fields(schema, spec)
        if data.draw(st.booleans()) and fields:
            body = data.draw(st.fixed_dictionaries({}, optional={f: VALUES for f in fields}))
        else:
            body = data.draw(VALUES)
        query = data.draw(st.dictionaries(st.sampled_from(["page", "page_size", "completed", "priority", "assignedTo",
                                                           "teamId", "channel", "unread"]), HOSTILE, max_size=3))
        before = OutboxEvent.objects.count()
        response = client.generic(method, url + ("?" + "&".join(f"{k}={quote(v)}" for k, v in query.items())
                                                 if query else ""), json.dumps(body), content_type="application/json")
        assert response.status_code < 500, (method, url, body, response.content[:500])
        if response.status_code >= 400:
            assert OutboxEvent.objects.count() == before, ("a refused request wrote an event", method, url, body)

    probe()


@pytest.mark.parametrize("path", ["/api/todos/" + "-" * 36 + "/", "/api/todos/" + "a" * 36 + "/",
                                  "/api/teams/" + "-" * 36 + "/", "/api/teams/" + "f" * 36 + "/"])
def test_route_ids_that_are_not_uuids_are_404(alice_client, path):
    assert alice_client.get(path).status_code == 404


def test_a_superscript_digit_as_user_id_is_a_field_error(alice_client, settings):
    settings.READ_YOUR_WRITES_TIMEOUT_S = 0
    todo = alice_client.post("/api/todos/", {"title": "t"}, format="json").json()["id"]
    response = alice_client.post(f"/api/todos/{todo}/assign/", {"assignedTo": "²"}, format="json")
    assert response.status_code == 400 and "assignedTo" in response.json()
    team = alice_client.post("/api/teams/", {"name": "t"}, format="json").json()["id"]
    response = alice_client.post(f"/api/teams/{team}/members/", {"userId": "²"}, format="json")
    assert response.status_code == 400 and "userId" in response.json()


def test_deeply_nested_json_is_a_400(alice_client):
    response = alice_client.generic("POST", "/api/todos/", "[" * 100_000 + "]" * 100_000,
                                    content_type="application/json")
    assert response.status_code == 400
