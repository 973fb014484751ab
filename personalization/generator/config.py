"""Generator settings and the (CPU-independent) shard layout."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from personalization.generator.defects import (
    DEFAULT_DEFECT_RATE,
    DEFAULT_DUPLICATE_RATE,
    DEFAULT_LATE_RATE,
    DEFECT_REASONS,
)

USERS_PER_SHARD = 500
LINES_PER_SHARD = 100_000  # bounds the memory one shard holds (it sorts its lines per day)
MAX_SHARDS = 4096


@dataclass(frozen=True)
class GeneratorConfig:
    events: int
    users: int
    days: int
    seed: int
    out: Path
    start: datetime  # midnight UTC, tz-aware
    workers: int = 1
    quiet: bool = False
    defect_rates: dict[str, float] = field(default_factory=dict)  # reason -> share of lines
    duplicate_rate: float = DEFAULT_DUPLICATE_RATE
    late_rate: float = DEFAULT_LATE_RATE
    # Purchase-only data (as a shop without web tracking sends): only orders, refunds and the
    # identify/alias/group and trait calls are written; --events is the budget before that.
    purchase_only: bool = False

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    @property
    def n_shards(self) -> int:
        """Fixed by users and events only (never the CPU count): bytes don't depend on workers."""
        wanted = max(
            math.ceil(self.users / USERS_PER_SHARD), math.ceil(self.events / LINES_PER_SHARD)
        )
        return max(1, min(self.users, MAX_SHARDS, wanted))

    def shard_users(self, shard: int) -> range:
        n = self.n_shards
        return range(shard * self.users // n, (shard + 1) * self.users // n)

    @property
    def clean_share(self) -> float:
        return 1.0 - sum(self.defect_rates.values()) - self.duplicate_rate


def default_defect_rates(total: float = DEFAULT_DEFECT_RATE) -> dict[str, float]:
    return {reason: total / len(DEFECT_REASONS) for reason in DEFECT_REASONS}
