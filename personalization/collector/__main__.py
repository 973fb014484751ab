"""`python -m personalization.collector`: the same as `personalization collect`, without loading the
other sub-commands (a restart after a crash is quicker)."""

from __future__ import annotations

import argparse
import logging
import sys

from personalization.collector import __doc__ as description
from personalization.collector import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m personalization.collector", description=description
    )
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
