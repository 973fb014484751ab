"""`python -m personalization.api`: the same as `personalization serve`, without loading the
other sub-commands (a restart after a crash is quicker)."""

from __future__ import annotations

import argparse
import logging
import sys

from personalization.api import __doc__ as description
from personalization.api import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m personalization.api", description=description)
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
