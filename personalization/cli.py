"""The `personalization` command: one sub-command per concern, each in its own module."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# sub-command name -> module exposing add_arguments(parser) and run(args) -> int
COMMANDS = {
    "generate": "personalization.generator",
    "demo": "personalization.demo",
    "publish": "personalization.publish",
    "build": "personalization.build",
    "segments": "personalization.segments",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="personalization", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=module.__doc__.splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
