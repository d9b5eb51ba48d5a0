"""`python -m steerseg_core ...`: every subcommand of the library in one entry point.

Each subcommand lives in the module that owns its work and exposes ``add_parser(subparsers)``;
the parser it adds sets ``func(args) -> int``. Errors that are the user's (``SteerSegError``)
print one line and exit non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import SteerSegError

# Modules that contribute subcommands (each has add_parser(subparsers)).
COMMAND_MODULES = (
    "steerseg_core.training.cli",
    "steerseg_core.tiny_models",
    "steerseg_core.segment_command",
    "steerseg_core.annotation.cli",
    "steerseg_core.eval.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m steerseg_core",
        description="SteerSeg: segment the object a sentence refers to in a video, and see why.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed subcommand: a user's error is one line on stderr and exit code 2."""
    try:
        return int(args.func(args) or 0)
    except SteerSegError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
