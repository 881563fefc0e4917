"""The analytics dashboard in headless Chromium, on the real roles: it draws charts with data,
shows a completion made through the API without a reload (the page has no timer: only a live
frame makes it load again), and exports CSV and PDF whose numbers are the API's. How fast that
is belongs to `make bench` (bench/analytics.py), not to a test on a shared machine."""
import csv
import io
import json
import subprocess
import time
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.helpers import unique, wait_until
from tests.web.conftest import screenshot_path, sign_in


@pytest.fixture
def analytics_system(roles, web, tmp_path):
    roles("runrelay")
    roles("runconsumer", "projections", "--group-id", unique("projection"))
    roles("runconsumer", "realtime", "--group-id", unique("realtime"))
    roles("runconsumer", "analytics", "--group-id", unique("analytics"), "--state-dir", str(tmp_path / "state"))
    roles("runconsumer", "analytics-sink", "--group-id", unique("analytics-sink"))
    return web


class Api:
    """The REST API of the running web role, over HTTP with alice's token (the ORM is not
    used once Playwright's loop runs in this thread)."""

    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(f"{self.base}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Token {self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read() or b"{}")

    def completed_today(self) -> int:
        answer = self.call("GET", "/api/analytics/completed/?bucket=hour&from=" +
                           time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(time.time() - 6 * 3600)))
        return sum(p["value"] for p in answer["series"][0]["points"])


@pytest.fixture
def api(analytics_system, user_factory):
    from rest_framework.authtoken.models import Token

    alice = user_factory(username="alice")
    return Api(analytics_system, Token.objects.create(user=alice).key)


def test_the_dashboard_draws_updates_live_and_exports_what_the_api_says(analytics_system, api, browser, tmp_path):
    first = api.call("POST", "/api/todos/", {"title": "ship it", "priority": "high"})
    api.call("POST", f"/api/todos/{first['id']}/complete/")
    second = api.call("POST", "/api/todos/", {"title": "and again", "priority": "low"})
    wait_until(lambda: api.completed_today() == 1, timeout=60, what="the first completion in the time series")

    page = sign_in(browser, analytics_system, "alice")
    page.goto(f"{analytics_system}/analytics/")
    expect(page.locator("#connection")).to_have_text("Live", timeout=15_000)
    page.select_option("#range", "24h")
    expect(page.locator("body")).to_have_attribute("data-loaded", "2", timeout=15_000)
    drawn = page.evaluate("""() => Object.fromEntries(Chart.getChart(document.getElementById('chart-completed'))
        .data.datasets.map(d => [d.label, d.data.reduce((a, b) => a + (b || 0), 0)]))""")
    assert {label: n for label, n in drawn.items() if n} == {"high": 1}, f"one completion, of a high-priority todo, stacked by priority: {drawn}"

    loads = int(page.locator("body").get_attribute("data-loaded"))
    api.call("POST", f"/api/todos/{second['id']}/complete/")
    expect(page.locator("body")).not_to_have_attribute("data-loaded", str(loads), timeout=60_000)
    page.wait_for_function("""() => Chart.getChart(document.getElementById('chart-completed'))
        .data.datasets.flatMap(d => d.data).reduce((a, b) => a + (b || 0), 0) === 2""", timeout=60_000)

    csv_link = page.locator("#export-csv").get_attribute("href")
    exported = page.request.get(f"{analytics_system}{csv_link}")
    rows = list(csv.DictReader(io.StringIO(exported.text())))
    completed = sum(int(r["value"]) for r in rows if r["metric"] == "completed" and r["series"] == "all")
    assert completed == 2 == api.completed_today()
    pdf = page.request.get(f"{analytics_system}{page.locator('#export-pdf').get_attribute('href')}")
    assert pdf.body().startswith(b"%PDF")
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf.body(), capture_output=True, check=True).stdout.decode()
    assert "completed (todos)" in text
    page.screenshot(path=str(screenshot_path(tmp_path, "analytics-dashboard.png")), full_page=True)

