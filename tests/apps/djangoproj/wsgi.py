"""WSGI config for the test project: ``betula tests.apps.djangoproj.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.djangoproj.settings")

application = get_wsgi_application()
