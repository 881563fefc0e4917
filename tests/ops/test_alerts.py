"""The alert rules fire when they should (promtool's own rule tests), and every metric the alert
rules and the Grafana dashboard name is one that a role or the monitor really exports."""
import json
import re
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from polystack import metrics
from tests.helpers import ROOT, manage

PROMETHEUS = ROOT / "docker" / "prometheus"
DASHBOARD = ROOT / "docker" / "grafana" / "polystack.json"
# What Prometheus itself gives every target; not ours to export.
BUILT_IN = {"up"}
NAME = re.compile(r"\b(?:polystack_[a-z0-9_]+|up)\b")


def promtool(*args: str) -> str:
    done = subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=PROMETHEUS)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_alert_rules_pass_their_promtool_tests():
    assert "SUCCESS: 6 rules found" in promtool("check", "rules", "alerts.yml")
    promtool("test", "rules", "alerts.test.yml")


def sample_names(families) -> set[str]:
    """The names Prometheus stores for these families: a counter's with _total, a histogram's
    _bucket, _count and _sum."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
    return {family.name + suffix for family in families for suffix in suffixes.get(family.type, ("",))}


@pytest.fixture
def exported(roles) -> set[str]:
    """Every metric name a role defines, and every one the monitor's probes give (one scrape of
    `runmonitor --once` on this test's topics and database)."""
    monitor = roles("runmonitor", "--once", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = monitor.communicate(timeout=60)
    assert monitor.returncode == 0, err
    probed = {family.name: family for family in text_string_to_metric_families(out)}
    assert probed["polystack_probe_up"].samples and all(s.value == 1 for s in probed["polystack_probe_up"].samples), \
        "a probe failed: " + err
    defined = [family for metric in vars(metrics).values() if isinstance(metric, MetricWrapperBase)
               for family in metric.describe()]
    return sample_names(defined) | sample_names(probed.values()) | BUILT_IN


def test_every_metric_the_alerts_and_the_dashboard_name_is_exported(exported):
    rules = (PROMETHEUS / "alerts.yml").read_text()
    expressions = re.findall(r"expr: \|?\n?((?:.*\n)+?)\s+for:", rules)
    assert len(expressions) == 6
    named = {name for expression in expressions for name in NAME.findall(expression)}
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(queries) >= 20
    named |= {name for query in queries for name in NAME.findall(query)}
    assert named - exported == set(), "named but never exported"
    assert {"polystack_consumer_group_lag", "polystack_dlq_letters", "polystack_outbox_oldest_age_seconds",
            "polystack_projection_lag", "up"} <= named


def test_the_compose_prometheus_config_is_what_prometheusconfig_prints():
    """In a process of its own: this one's registry also holds the consumers tests register."""
    command = manage("prometheusconfig", "--compose")
    out, err = command.communicate(timeout=60)
    assert command.returncode == 0, err
    assert json.loads(out) == json.loads((PROMETHEUS / "prometheus.compose.yml").read_text()), \
        "run: python manage.py prometheusconfig --compose > docker/prometheus/prometheus.compose.yml"


def test_the_local_prometheus_config_is_valid_and_scrapes_every_role(tmp_path, capsys):
    call_command("prometheusconfig")
    config = tmp_path / "prometheus.yml"
    config.write_text(capsys.readouterr().out)
    promtool("check", "config", str(config))
    targets = json.loads(config.read_text())["scrape_configs"][0]["static_configs"]
    roles = {target["labels"]["role"] for target in targets}
    assert {"web", "worker", "beat", "relay", "scheduler", "monitor", "consumer-projections", "consumer-sync"} <= roles
    assert len({target["targets"][0] for target in targets}) == len(targets), "two roles on one port"
    assert Path(json.loads(config.read_text())["rule_files"][0]) == PROMETHEUS / "alerts.yml"


def test_the_procfile_starts_each_role_on_the_port_prometheus_scrapes(capsys):
    call_command("procfile", "--python", "py", "--prometheus", ".stack/prometheus.yml")
    procfile = dict(line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines())
    call_command("prometheusconfig")
    targets = json.loads(capsys.readouterr().out)["scrape_configs"][0]["static_configs"]
    for target in targets:
        port = target["targets"][0].rsplit(":", 1)[1]
        assert procfile[target["labels"]["role"]].startswith(f"METRICS_PORT={port} ")
    assert set(procfile) == {target["labels"]["role"] for target in targets} | {"prometheus"}
    assert "--config.file=.stack/prometheus.yml" in procfile["prometheus"]
    assert "--web.listen-address=127.0.0.1:9090" in procfile["prometheus"]
