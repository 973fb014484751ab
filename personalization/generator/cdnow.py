"""CDNOW purchases (real, purchase-only data) as Segment-spec `Order Completed` events.

The CDNOW cohort (Fader & Hardie; files from the Lifetimes package, MIT - see SOURCE.md and
LICENSE.txt next to the data) has one row per customer and purchase day:
`customer_id date(YYYYMMDD) number_of_cds dollar_value` (CDNOW_master.txt), or with a customer
index as second column (CDNOW_sample.txt). Each row becomes one `Order Completed` track call
(userId = cdnow-<customer_id>, properties.revenue = dollar_value, one product line `cd` with
quantity = number_of_cds) at noon UTC of its day, written as JSON lines into a landing folder,
one dt=YYYY-MM-01 folder per month. A malformed row is an error naming its line: nothing is
silently dropped.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)


class CdnowFormatError(ValueError):
    """A CDNOW line that is not `customer [index] YYYYMMDD cds dollars`."""


def parse_line(line: str, number: int) -> tuple[str, datetime, int, float]:
    """(customer_id, day at noon UTC, number of CDs, dollars) of one CDNOW line."""
    parts = line.split()
    if len(parts) == 5:  # the sample's extra customer index
        parts = [parts[0], *parts[2:]]
    if len(parts) != 4:
        raise CdnowFormatError(f"line {number}: expected 4 or 5 columns, got {line.strip()!r}")
    customer, day, cds, dollars = parts
    try:
        at = datetime.strptime(day, "%Y%m%d").replace(hour=12, tzinfo=UTC)
        quantity, revenue = int(cds), float(dollars)
    except ValueError as error:
        raise CdnowFormatError(f"line {number}: {error} in {line.strip()!r}") from error
    if quantity < 0 or revenue < 0:
        raise CdnowFormatError(f"line {number}: negative quantity or amount in {line.strip()!r}")
    return customer, at, quantity, revenue


def order_event(customer: str, at: datetime, quantity: int, revenue: float, number: int) -> dict:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    user = f"cdnow-{customer}"
    price = round(revenue / quantity, 2) if quantity else 0.0
    return {
        "messageId": f"cdnow-{number}",
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "anonymousId": user,
        "timestamp": stamp,
        "sentAt": stamp,
        "receivedAt": stamp,
        "properties": {
            "order_id": f"cdnow-order-{number}",
            "revenue": revenue,
            "currency": "USD",
            "products": [{"product_id": "cd", "quantity": quantity, "price": price}],
        },
    }


def convert_cdnow(source: Path, out: Path) -> dict[str, object]:
    """Write every row of `source` as an Order Completed event under `out`; returns a small
    manifest (rows, customers, first and last day, as_of = the day after the last purchase)."""
    by_month: dict[str, list[str]] = defaultdict(list)
    customers: set[str] = set()
    first = last = None
    rows = 0
    with source.open() as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            customer, at, quantity, revenue = parse_line(line, number)
            event = order_event(customer, at, quantity, revenue, number)
            by_month[at.strftime("%Y-%m-01")].append(json.dumps(event, separators=(",", ":")))
            customers.add(customer)
            first = at if first is None or at < first else first
            last = at if last is None or at > last else last
            rows += 1
    if not rows or first is None or last is None:
        raise CdnowFormatError(f"{source}: no purchases")
    for month, lines in sorted(by_month.items()):
        folder = out / f"dt={month}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "part-0000.jsonl").write_text("\n".join(lines) + "\n")
    manifest = {
        "rows": rows,
        "customers": len(customers),
        "first_day": first.date().isoformat(),
        "last_day": last.date().isoformat(),
        "as_of": f"{(last.date() + timedelta(days=1)).isoformat()}T00:00:00Z",
    }
    log.info("CDNOW: %d purchases of %d customers written to %s", rows, len(customers), out)
    return manifest
