"""Command line of the autograder: one sub-command per module.

Each module listed in SUBCOMMANDS provides `register(subparsers)`, which adds its
sub-command and sets `func` (called with the parsed arguments; returns an exit code).
Modules are imported lazily so that `autograder release` does not import Dask.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# sub-command name -> module that implements it
SUBCOMMANDS = {
    "release": "autograder.release",
    "grade": "autograder.grade",
    "regrade": "autograder.regrade",
    "feedback": "autograder.feedback",
    "export": "autograder.export",
    "report": "autograder.report",
    "similarity": "autograder.similarity",
    "demo": "autograder.demo",
    "setup-cells": "autograder.setup_cell",
    "watch": "autograder.watch",
    "release-feedback": "autograder.exchange",
    "collect": "autograder.exchange",
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autograder", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    registered: set[str] = set()  # a module may provide several sub-commands: register it once
    for name, module_name in SUBCOMMANDS.items():
        if module_name in registered:
            continue
        if wanted is not None and module_name != SUBCOMMANDS[wanted]:
            sub.add_parser(name)  # listed in --help without importing its module
            continue
        registered.add(module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            sub.add_parser(name, help="(not available in this version)")
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)
