"""Command line: ``betula MODULE:ATTR [options]``, generated from the settings registry."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from .config import Config, ConfigError, add_arguments, describe

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """One line on a bad flag, like every other configuration error (no usage wall)."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(2, f"betula: error: {message} (see betula --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="betula",
        description="Serve an ASGI application.",
        epilog="Every option can also be set with its BETULA_* environment variable or in the "
               "TOML file given to --config.",
    )
    parser.add_argument("app", nargs="?", default=argparse.SUPPRESS,
                        help="the application, MODULE:ATTRIBUTE (e.g. myproject.main:app)")
    parser.add_argument("--version", action="version", version=f"betula {__version__}")
    parser.add_argument("--print-config", action="store_true", default=argparse.SUPPRESS,
                        help="print the effective settings (as TOML, each with where it came "
                             "from: flag, env, config file or default) and exit")
    add_arguments(parser)
    return parser


def fail(message: str) -> int:
    print(f"betula: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    print_config = args.pop("print_config", False)
    try:
        config = Config.load(args)
    except ConfigError as exc:
        return fail(str(exc))
    if print_config:
        print(describe(config))
        return 0
    if not config.app and not config.mount:
        return fail("no application given: betula MODULE:ATTRIBUTE (or 'app' in the config file)")

    from .logs import configure_logging
    from .run import run

    try:
        configure_logging(config.log_level, config.access_log, config.access_log_file,
                          bool(config.access_log_format or config.access_log_json))
    except OSError as exc:
        return fail(f"cannot open the access log file {config.access_log_file!r}: "
                    f"{exc.strerror}")
    return run(config)
