"""Betula: a fast Python application server for ASGI and WSGI apps."""

__version__ = "0.1.0"
