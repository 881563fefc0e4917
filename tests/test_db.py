"""Connections of our own (LISTEN, locks, the relay leader) use every option the ORM's do."""
import psycopg
import pytest
from django.db import connection

from polystack import db


@pytest.mark.django_db
def test_conninfo_keeps_sslmode_and_the_other_libpq_options(monkeypatch):
    options = {**connection.settings_dict["OPTIONS"], "sslmode": "disable", "application_name": "polystack-x",
               "options": "-c statement_timeout=12345"}
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)
    info = psycopg.conninfo.conninfo_to_dict(db.conninfo())
    assert (info["sslmode"], info["application_name"]) == ("disable", "polystack-x")
    with psycopg.connect(db.conninfo()) as own:  # and they really connect with it
        assert own.execute("SHOW statement_timeout").fetchone()[0] == "12345ms"
