"""WSGI entry point, for tools that want one; the web role runs daphne on asgi.py."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "polystack.settings.production")  # local: see the Makefile
application = get_wsgi_application()
