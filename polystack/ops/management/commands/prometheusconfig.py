"""Print Prometheus' configuration for the roles of `procfile` (make run): one scrape target per
role's metrics port, and the alert rules of docker/prometheus/alerts.yml."""
import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from polystack.ops.roles import metrics_ports, roles

RULES = Path(settings.BASE_DIR) / "docker" / "prometheus" / "alerts.yml"
SCRAPE_INTERVAL = "10s"


class Command(BaseCommand):
    help = (
        "Print a prometheus.yml that scrapes every role's metrics endpoint (the ports procfile gives them) "
        "and loads the alert rules.\n\n"
        "  python manage.py prometheusconfig > .stack/prometheus.yml\n"
        "  python manage.py prometheusconfig --host 127.0.0.1 --rules docker/prometheus/alerts.yml"
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Where the roles' metrics endpoints listen.")
        parser.add_argument("--rules", default=str(RULES), help="The alert rules file.")
        parser.add_argument("--compose", action="store_true",
                            help="For docker/docker-compose.yml: each role is a service listening on 9400 "
                                 "(docker/prometheus/prometheus.compose.yml is this).")

    def handle(self, *args, host: str, rules: str, compose: bool, **options):
        ports = metrics_ports(roles(python="python"))
        if compose:  # services are named as the roles, consumers without their "consumer-"
            rules = "/etc/prometheus/alerts.yml"
            targets = [{"targets": [f"{name.removeprefix('consumer-')}:9400"], "labels": {"role": name}}
                       for name in ports]
        else:
            rules = str(Path(rules).resolve())
            targets = [{"targets": [f"{host}:{port}"], "labels": {"role": name}} for name, port in ports.items()]
        # YAML is a superset of JSON: no YAML library needed to write it.
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "rule_files": [rules],
            "scrape_configs": [{"job_name": "polystack", "static_configs": targets}],
        }
        self.stdout.write(json.dumps(config, indent=2))
