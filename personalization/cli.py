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
    "collect": "personalization.collector",
    "serve": "personalization.api",
    "forget": "personalization.erasure",
    "worker": "personalization.worker",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that sub-command's module is imported (others are stubs),
    so a quick command such as `segments validate` does not pay for scikit-learn or Dagster."""
    parser = argparse.ArgumentParser(prog="personalization", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            subparsers.add_parser(name)
            continue
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=module.__doc__.splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    chosen = next((word for word in words if not word.startswith("-")), None)
    args = build_parser(chosen if chosen in COMMANDS else None).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
