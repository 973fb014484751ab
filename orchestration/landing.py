"""The landing folder as an observable source asset (same key as the dbt source landing.events)."""

from pathlib import Path

import dagster as dg

from orchestration.dbt_assets import LANDING_KEY
from orchestration.resources import WarehouseResource
from personalization.raw_load import LandingFile, list_landing_files


def landing_metadata(files: list[LandingFile], root: Path) -> dict[str, dg.MetadataValue]:
    newest = max(files, key=lambda f: (f.modified_at, f.path), default=None)
    return {
        "landing_path": dg.MetadataValue.path(str(root)),
        "file_count": dg.MetadataValue.int(len(files)),
        "total_bytes": dg.MetadataValue.int(sum(f.size for f in files)),
        "newest_file": dg.MetadataValue.text(newest.path if newest else ""),
        "newest_modified_at": dg.MetadataValue.text(
            newest.modified_at.isoformat() if newest else ""
        ),
    }


def landing_version(files: list[LandingFile]) -> str:
    """Changes whenever a file lands (or an existing one changes)."""
    return f"{len(files)}:{sum(f.size for f in files)}:{max((f.path for f in files), default='')}"


@dg.observable_source_asset(
    key=LANDING_KEY,
    group_name="landing",
    description=(
        "Landing zone: Segment-spec JSON-lines files (.jsonl, .ndjson, optionally .gz) under "
        "PERSONALIZATION_LANDING (default data/landing). Observed: file count, newest file."
    ),
)
def landing_events(warehouse: WarehouseResource) -> dg.ObserveResult:
    root = warehouse.landing()
    files = list_landing_files(root)
    return dg.ObserveResult(
        data_version=dg.DataVersion(landing_version(files)),
        metadata=landing_metadata(files, root),
    )
