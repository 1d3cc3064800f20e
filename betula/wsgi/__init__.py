"""WSGI (PEP 3333) interface adapter."""
