"""Health probes and settings safety, against the real stack."""
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.helpers import ROOT, wait_until


@pytest.mark.django_db
def test_healthz_and_readyz_answer_ok_when_the_stack_is_up(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["unavailable"] == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, dict] | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)
    except OSError:
        return None  # not listening yet


def test_readyz_answers_503_naming_what_is_unreachable():
    """A real server process whose database and broker are wrong names both, and hides details."""
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "polystack.settings.test",
        "DATABASE_URL": "postgres://polystack:secret-pw@127.0.0.1:1/polystack",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "apps.web.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        status, body = wait_until(lambda: _get(f"http://127.0.0.1:{port}/readyz"), timeout=60, what="daphne to answer")
        assert status == 503
        assert body["status"] == "unavailable"
        assert body["unavailable"] == ["postgresql", "kafka"]
        assert body["checks"]["redis"] == {"ok": True}
        assert "secret-pw" not in json.dumps(body) and "127.0.0.1" not in json.dumps(body)
        assert _get(f"http://127.0.0.1:{port}/healthz") == (200, {"status": "ok"})
    finally:
        server.terminate()
        server.wait(30)


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    env["DJANGO_SETTINGS_MODULE"] = "polystack.settings.production"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_readyz_looks_at_its_dependencies_at_most_once_per_cache_period(client, monkeypatch):
    """A probe in a loop opens no new PostgreSQL, Redis or Kafka client per request."""
    from polystack import health

    looks = []
    monkeypatch.setattr(health, "CHECKS", {"kafka": lambda: looks.append(1)})
    monkeypatch.setattr(health, "_ready", None)
    for _ in range(20):
        assert client.get("/readyz").status_code == 200
    assert len(looks) == 1
    monkeypatch.setattr(health, "READY_CACHE_S", 0)
    client.get("/readyz")
    assert len(looks) == 2, "looked again once the cached answer is old"
