"""A small Django project served by the real CLI in tests/test_wsgi_frameworks.py:
``betula tests.apps.djangoproj.wsgi:application``."""
