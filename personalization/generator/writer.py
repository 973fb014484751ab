"""Run all shards (optionally in parallel) and write the manifest and the ground truth."""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import shutil
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from personalization.generator.catalogue import build_catalogue, write_catalogue_csv
from personalization.generator.config import GeneratorConfig
from personalization.generator.defects import DEFECT_REASONS
from personalization.generator.sessions import mix_name
from personalization.generator.shard import GT_COLUMNS, ShardResult, init_worker, run_shard

log = logging.getLogger(__name__)
OWNED = ("manifest.json", "ground_truth")  # besides dt=* folders


class OutputError(ValueError):
    """The output directory cannot be used."""


def prepare_output(out: Path) -> None:
    """Create `out`, or clear a previous generator run in it; refuse a foreign non-empty folder."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path {out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output directory {out}: {exc.strerror or exc}") from exc
    foreign = [
        p.name
        for p in out.iterdir()
        if not (p.name.startswith("dt=") or p.name in OWNED or p.name.startswith("."))
    ]
    if foreign:
        raise OutputError(
            f"output directory {out} is not empty and holds files the generator did not write "
            f"(e.g. {sorted(foreign)[0]}); use an empty or new directory"
        )
    for p in out.iterdir():
        if p.name.startswith("dt=") or p.name == "ground_truth":
            shutil.rmtree(p)
        elif p.name == "manifest.json":
            p.unlink()
    probe = out / ".write-probe"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to output directory {out}: {exc.strerror or exc}") from exc


def _results(cfg: GeneratorConfig) -> Iterator[ShardResult]:
    shards = range(cfg.n_shards)
    workers = max(1, min(cfg.workers, cfg.n_shards))
    if workers == 1:
        init_worker(cfg)
        yield from map(run_shard, shards)
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ctx.Pool(workers, initializer=_init_pool_worker, initargs=(cfg,)) as pool:
        yield from pool.imap(run_shard, shards)
        # done: the workers exit on their own (Pool's exit would SIGTERM them instead)
        pool.close()
        pool.join()


def _init_pool_worker(cfg: GeneratorConfig) -> None:
    """A forked worker inherits its parent's signal dispositions: a parent that ignored SIGTERM
    (Dagster in process gives SIGTERM SIGINT's handler, and a pytest-xdist worker ignores SIGINT)
    made Pool.terminate wait forever for the workers. A worker ends on SIGTERM, as a process
    does by default."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    init_worker(cfg)


def generate(cfg: GeneratorConfig) -> dict:
    """Write the whole data set for `cfg`; returns the manifest."""
    prepare_output(cfg.out)
    show = not cfg.quiet and sys.stderr.isatty()
    files: list[dict] = []
    defects: Counter = Counter({reason: 0 for reason in DEFECT_REASONS})
    mix: Counter = Counter()
    rows: list[list[str]] = []
    shared: list[str] = []
    clean = duplicates = late = 0
    with tqdm(
        total=cfg.events, unit="ev", unit_scale=True, disable=not show, file=sys.stderr
    ) as bar:
        for res in _results(cfg):
            files.extend({"path": p, "lines": n} for p, n in res.files)
            defects.update(res.defects)
            mix.update({mix_name(head): n for head, n in res.mix.items()})
            rows.extend(res.rows)
            shared.extend(res.shared_anonymous_ids)
            clean += res.clean
            duplicates += res.duplicates
            late += res.late
            bar.update(res.lines)
    files.sort(key=lambda f: f["path"])
    gt = cfg.out / "ground_truth"
    gt.mkdir(exist_ok=True)
    rows.sort(key=lambda row: row[0])
    with (gt / "users.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(GT_COLUMNS)
        writer.writerows(rows)
    write_catalogue_csv(build_catalogue(), gt / "catalogue.csv")
    manifest = {
        "seed": cfg.seed,
        "start": cfg.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": cfg.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "as_of": cfg.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "days": cfg.days,
        "users_requested": cfg.users,
        "events_requested": cfg.events,
        "purchase_only": cfg.purchase_only,
        "lines_total": sum(f["lines"] for f in files),
        "clean_events": clean,
        "files": files,
        "defects": dict(defects),
        "duplicates": duplicates,
        "late_events": late,
        "shared_anonymous_ids": sorted(shared),
        "event_mix": dict(sorted(mix.items())),
        "rates": {
            "defects": cfg.defect_rates,
            "duplicates": cfg.duplicate_rate,
            "late": cfg.late_rate,
        },
        "shards": cfg.n_shards,
    }
    (cfg.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    log.info(
        "wrote %d lines (%d clean, %d defects, %d duplicates) in %d files to %s",
        manifest["lines_total"], clean, sum(defects.values()), duplicates, len(files), cfg.out,
    )  # fmt: skip
    return manifest
