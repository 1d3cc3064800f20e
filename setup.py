"""Builds the optional C scanner (betula/_h1scan.c); everything else is in pyproject.toml.

The extension is optional: where no C compiler is at hand the install still succeeds, and
the HTTP/1 connection parses every head with httptools alone (the same answers, slower on
heads it has not seen before).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("betula._h1scan", sources=["betula/_h1scan.c"], optional=True,
                  extra_compile_args=["-O2"]),
    ],
)
