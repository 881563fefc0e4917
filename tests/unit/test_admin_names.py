"""The admin names every model it lists in the singular and the plural as a person would: no
"Outbox event (waiting for the relay)s"."""
import re

from django.apps import apps
from django.contrib import admin


def test_every_model_the_admin_lists_has_a_proper_plural():
    for model in apps.get_models():
        if not admin.site.is_registered(model):
            continue
        plural = str(model._meta.verbose_name_plural)
        assert not re.search(r"\)s$", plural), f"{model.__name__}: {plural!r} (give Meta a verbose_name_plural)"
