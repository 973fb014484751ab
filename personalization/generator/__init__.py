"""Generate synthetic Segment-style event files with ground truth, defects and late arrivals.

`personalization generate --events N --users U --days D --seed S --out DIR` writes
DIR/dt=YYYY-MM-DD/part-NNNN.jsonl.gz (gzipped JSON lines, as a collector lands them),
DIR/manifest.json and DIR/ground_truth/{users,catalogue}.csv. Equal arguments give byte-identical
files whatever --workers is. See docs/generator.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from personalization.generator.config import GeneratorConfig, default_defect_rates
from personalization.generator.defects import (
    DEFAULT_DEFECT_RATE,
    DEFAULT_DUPLICATE_RATE,
    DEFAULT_LATE_RATE,
    DEFECT_REASONS,
)
from personalization.generator.writer import OutputError, generate

__all__ = ["GeneratorConfig", "add_arguments", "build_config", "generate", "run"]
log = logging.getLogger(__name__)
DEFAULT_START = "2026-01-01"
DEFAULT_SEED = 42


class UsageError(ValueError):
    """A bad command-line value; the message is shown as is."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, required=True, help="target total lines (±1%%)")
    parser.add_argument("--users", type=int, required=True, help="number of people/visitors")
    parser.add_argument("--days", type=int, required=True, help="length of the period in days")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default 42)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--start", default=DEFAULT_START, help="first day, YYYY-MM-DD (UTC)")
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (default: CPU count, at most 2)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--defect-rate",
        type=float,
        default=DEFAULT_DEFECT_RATE,
        help=f"share of lines that are defective, split evenly over the reasons "
        f"(default {DEFAULT_DEFECT_RATE})",
    )
    parser.add_argument(
        "--defect",
        action="append",
        default=[],
        metavar="REASON=RATE",
        help=f"override one reason's share of lines; reasons: {', '.join(DEFECT_REASONS)}",
    )
    parser.add_argument(
        "--duplicate-rate", type=float, default=DEFAULT_DUPLICATE_RATE, help="share of lines"
    )
    parser.add_argument(
        "--late-rate", type=float, default=DEFAULT_LATE_RATE, help="share of clean events"
    )
    parser.add_argument(
        "--purchase-only",
        action="store_true",
        help="write only orders, refunds and identify/trait calls (no browsing); --events is "
        "the budget before browsing is left out",
    )


def _rate(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0 or value != value:
        raise UsageError(f"{name} must be between 0 and 1, got {value}")
    return value


def build_config(args: argparse.Namespace) -> GeneratorConfig:
    """Validate parsed arguments; raises UsageError with a one-line message."""
    for name in ("events", "users", "days"):
        value = getattr(args, name)
        if value is None or value < 1:
            raise UsageError(f"--{name} must be a positive integer, got {value}")
    if args.users > args.events:
        raise UsageError(f"--users ({args.users}) must not exceed --events ({args.events})")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    workers = args.workers if args.workers is not None else min(2, os.cpu_count() or 1)
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    try:
        start = datetime.strptime(args.start, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise UsageError(f"--start must be a date YYYY-MM-DD, got {args.start!r}") from None
    rates = default_defect_rates(_rate("--defect-rate", args.defect_rate))
    for item in args.defect:
        reason, sep, value = item.partition("=")
        if not sep or reason not in DEFECT_REASONS:
            raise UsageError(
                f"--defect expects REASON=RATE with REASON one of {', '.join(DEFECT_REASONS)}; "
                f"got {item!r}"
            )
        try:
            rates[reason] = _rate(f"--defect {reason}", float(value))
        except ValueError:
            raise UsageError(f"--defect {reason}: rate must be a number, got {value!r}") from None
    duplicate_rate = _rate("--duplicate-rate", args.duplicate_rate)
    late_rate = _rate("--late-rate", args.late_rate)
    if sum(rates.values()) + duplicate_rate >= 0.9:
        raise UsageError("defect and duplicate rates together must stay below 0.9")
    return GeneratorConfig(
        events=args.events,
        users=args.users,
        days=args.days,
        seed=args.seed,
        out=args.out,
        start=start,
        workers=workers,
        quiet=args.quiet,
        defect_rates=rates,
        duplicate_rate=duplicate_rate,
        late_rate=late_rate,
        purchase_only=bool(getattr(args, "purchase_only", False)),
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of `personalization generate`; returns the exit code."""
    try:
        cfg = build_config(args)
        generate(cfg)
    except (UsageError, OutputError) as exc:
        print(f"personalization generate: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    return 0
