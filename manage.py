#!/usr/bin/env python
"""Django's command-line utility for PolyStack."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "polystack.settings.production")  # local: see the Makefile
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
