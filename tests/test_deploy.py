"""What a production deployment gets: settings that pass Django's deploy checks, no way to start
with the local (DEBUG) settings by accident, a private API schema, a compose file that publishes
neither Kafka nor an unauthenticated UI."""
import os
import secrets
import subprocess
import sys

import yaml

from tests.helpers import ROOT

PRODUCTION = {"DJANGO_SETTINGS_MODULE": "polystack.settings.production", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
              "DJANGO_ALLOWED_HOSTS": "todo.example.org"}


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_production_settings_pass_check_deploy_clean():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_settings_named_the_process_starts_as_production_and_refuses_without_a_secret():
    result = manage("check", env={})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_the_api_schema_is_for_signed_in_users(client, alice_client):
    assert client.get("/api/schema/").status_code in (401, 403)
    assert client.get("/api/docs/").status_code in (401, 403)
    assert alice_client.get("/api/schema/").status_code == 200


def test_compose_publishes_neither_kafka_nor_an_open_kafka_ui():
    """Web alone faces the world; Kafka UI and Prometheus (no sign-in) and Grafana, only this machine."""
    services = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())["services"]
    published = {name: spec.get("ports", []) for name, spec in services.items() if spec.get("ports")}
    assert set(published) == {"web", "kafka-ui", "prometheus", "grafana"}
    for name in ("kafka-ui", "prometheus", "grafana"):
        assert all(str(port).startswith("127.0.0.1:") for port in published[name])
    assert services["kafka-ui"]["profiles"] == ["ui"]


def test_compose_runs_every_consumer_role():
    listed = subprocess.run([sys.executable, str(ROOT / "manage.py"), "runconsumer", "--list"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=True).stdout
    ours = [line.split()[0] for line in listed.splitlines() if line.strip()]  # a fresh registry: none of the tests'
    services = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())["services"]
    commands = [f"{spec.get('command', '')} " for spec in services.values()]
    missing = [name for name in ours if not any(f"runconsumer {name} " in command for command in commands)]
    assert "sync" in ours and missing == [], f"consumer roles without a compose service: {missing}"
