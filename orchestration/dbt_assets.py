"""dbt models as Dagster assets, dbt tests as asset checks, with a translator for this project.

Groups follow the dbt layer (landing, staging, intermediate, marts, python_models, reference);
descriptions come from the dbt docs; owners are the analytics-engineering team, except the
data-science Python models (imputation, clustering). Marts carry freshness policies. Tests with
severity `error` are blocking checks: a failure stops every model downstream of it (dbt skips
them) and every Dagster step after the dbt step.
"""

import contextlib
import functools
import json
import logging
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from dagster_dbt.errors import DagsterDbtCliRuntimeError
from dbt.adapters.duckdb.connections import DuckDBConnectionManager
from dbt.adapters.duckdb.credentials import DuckDBCredentials

from orchestration.resources import DBT_PROJECT, DUCKDB_POOL, WarehouseResource
from personalization import warm_dbt
from personalization.dagster_record import is_counted_view

log = logging.getLogger(__name__)

AS_OF_TAG = "personalization/as_of"
AS_OF_SOURCE_TAG = "personalization/as_of_source"
LANDING_KEY = dg.AssetKey(["landing", "events"])  # the dbt source landing.events
RAW_LOAD_MODEL = "raw_landing_events"
ANALYTICS = "team:analytics-engineering"
DATA_SCIENCE = "team:data-science"

# Marts refreshed by micro-batches and the hourly schedule, and marts refreshed by the daily build.
FRESHNESS_INCREMENTAL = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=3), warn_window=timedelta(minutes=90)
)
FRESHNESS_DAILY = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=48), warn_window=timedelta(hours=26)
)

# Transient failures only: a DuckDB file lock held by another process, an interrupted connection.
# A failing dbt test is never retried (it would fail the same way).
DBT_RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)
TRANSIENT_ERROR = re.compile(
    r"could not set lock|conflicting lock|resource temporarily unavailable|"
    r"connection (?:reset|refused|aborted)|timed out",
    re.IGNORECASE,
)


def layer(props: Mapping[str, Any]) -> str:
    """The project layer of a dbt node, from its path (models/<layer>/...) or resource type."""
    if props["resource_type"] == "seed":
        return "reference"
    if props["resource_type"] == "source":
        return "landing"
    path = str(props.get("original_file_path") or "")
    if props.get("name") == RAW_LOAD_MODEL:
        return "landing"
    if path.startswith("python_models/"):
        return "python_models"
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "models":
        return parts[1]
    fqn = props.get("fqn") or []
    return fqn[1] if len(fqn) > 2 else "default"


def is_python_model(props: Mapping[str, Any]) -> bool:
    """dbt Python models other than the raw load (imputation, clustering: data science)."""
    return layer(props) == "python_models"


def is_daily_only(props: Mapping[str, Any]) -> bool:
    """Models refitted by the daily build only: tagged `daily`, or a clustering Python model."""
    tags = props.get("tags") or props.get("config", {}).get("tags") or []
    name = str(props.get("name", ""))
    return "daily" in tags or (props.get("language") == "python" and "cluster" in name)


def is_report(props: Mapping[str, Any]) -> bool:
    """Audit/report marts (rpt_*): built by the daily run, not by micro-batches."""
    return str(props.get("name", "")).startswith("rpt_")


class ProjectTranslator(DagsterDbtTranslator):
    """Groups by layer, dbt descriptions, owners, mart freshness, landing upstream of raw load."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return layer(dbt_resource_props)

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        description = (dbt_resource_props.get("description") or "").strip()
        return description or super().get_description(dbt_resource_props)

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str] | None:
        meta = dbt_resource_props.get("config", {}).get("meta") or {}
        if meta.get("owner"):
            return [str(meta["owner"])]
        return [DATA_SCIENCE if is_python_model(dbt_resource_props) else ANALYTICS]

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props.get("name") == RAW_LOAD_MODEL and props["resource_type"] == "model":
            # the raw load reads the landing folder itself (not through source()): make the
            # landing asset its upstream so the graph starts at the files
            spec = spec.merge_attributes(deps=[LANDING_KEY])
        group = layer(props)
        if props["resource_type"] == "model" and group == "marts":
            daily = is_report(props) or "cluster" in props["name"]
            policy = FRESHNESS_DAILY if daily else FRESHNESS_INCREMENTAL
            spec = spec.replace_attributes(freshness_policy=policy)
        elif props["resource_type"] == "model" and is_daily_only(props):
            spec = spec.replace_attributes(freshness_policy=FRESHNESS_DAILY)
        return spec


TRANSLATOR = ProjectTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def prepare_dbt_project() -> None:
    """Under `dagster dev`, parse the dbt project first (DbtProject.prepare_if_dev), so the UI
    always shows the models as they are now; elsewhere (tests, deployments) the manifest already
    built is used. dagster-dbt runs `dbt` from PATH: put this environment's first, as activating
    the virtual environment would (`make ui` and `.venv/bin/dagster dev` need no activation)."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, path]) if path else bin_dir
    DBT_PROJECT.prepare_if_dev()


MODEL_FOLDERS = ("models", "python_models")  # dbt_project.yml's model-paths


def models_missing_from_manifest(manifest: Mapping[str, Any], project_dir: Path) -> list[str]:
    """Model files of the project that the manifest does not know: a manifest parsed before
    they were added. The jobs select from the manifest, so the micro-batch would leave such a
    model out (a new touched-user model never ran, and new users never reached the marts)."""
    disabled = [props for versions in manifest.get("disabled", {}).values() for props in versions]
    known = {
        props.get("original_file_path")
        for props in [*manifest["nodes"].values(), *disabled]
        if props["resource_type"] == "model"
    }
    files = sorted(
        str(path.relative_to(project_dir))
        for folder in MODEL_FOLDERS
        for pattern in ("*.sql", "*.py")
        for path in (project_dir / folder).rglob(pattern)
    )
    return [f for f in files if f not in known and not Path(f).name.startswith("_")]


prepare_dbt_project()
DBT_MANIFEST: dict[str, Any] = json.loads(DBT_PROJECT.manifest_path.read_text())
if missing := models_missing_from_manifest(DBT_MANIFEST, Path(DBT_PROJECT.project_dir)):
    log.warning(
        "%s is stale (it lacks %s): run `dbt parse` before loading the code location",
        DBT_PROJECT.manifest_path,
        ", ".join(missing),
    )


def _failure_is_transient(invocation: Any, error: Exception) -> bool:
    """A lock conflict or a dropped connection, in dbt's results or its error output."""
    try:
        results = invocation.get_artifact("run_results.json").get("results", [])
    except Exception:  # no artefact: dbt stopped before running anything
        results = []
    messages = [str(r.get("message") or "") for r in results if r.get("status") == "error"]
    return any(TRANSIENT_ERROR.search(m) for m in [*messages, str(error)])


def tests_left_for_daily(
    manifest: Mapping[str, Any], selected_keys: Iterable[dg.AssetKey]
) -> list[str]:
    """Tests reading a daily-only model (clusters) that this run does not build.

    A micro-batch adds users the last clustering refit has not seen; a test such as "every user
    clustered once" holds again after the daily build, which runs it.
    """
    selected = set(selected_keys)
    nodes = manifest["nodes"]
    stale = {
        uid
        for uid, props in nodes.items()
        if props["resource_type"] == "model"
        and is_daily_only(props)
        and TRANSLATOR.get_asset_key(props) not in selected
    }
    return sorted(
        props["name"]
        for uid, props in nodes.items()
        if props["resource_type"] == "test" and set(manifest["parent_map"].get(uid, [])) & stale
    )


# The tests that guard a micro-batch's outputs: the keys (unique, not null, foreign keys) of the
# tables it writes, folded into one `guard_keys` test per table that checks only the rows the run
# wrote (tests/dbt/generic/guard_keys.sql), raw lines conserved, every landing file loaded, and
# the membership history's spells. Left to the hourly and daily runs, which build the same models:
# dbt's own key tests on whole tables (those runs skip guard_keys, which folds the same checks),
# value checks (accepted values and ranges, expressions, segment sizes), unit tests, and the keys
# of views (a view's rows follow from its code and its input tables, whose keys a batch checks).
GUARD_GENERIC_TESTS = frozenset({"guard_keys"})
GUARD_SINGULAR_TESTS = frozenset(
    {
        "assert_raw_lines_conserved",
        "assert_landing_files_all_loaded",
        "assert_membership_spells_do_not_overlap",
        "assert_segment_events_match_spells",
    }
)
SENSOR_BATCH_TAG = "personalization/batch"  # set by the landing sensor on the runs it starts
# What a job's runs are (jobs.py): "incremental" for the micro-batch job (the sensor's batches and
# the hourly schedule), "full" for the daily build, "erasure" for the privacy job
RUN_KIND_TAG = "personalization/kind"
INCREMENTAL_KIND = "incremental"
# Models a landing file cannot change (dbt tag): the privacy request log and suppression list
# only create their empty tables; personalization/erasure.py writes their rows (and refuses to
# run before a build created them), and an erasure's rebuild is a full `dbt build`. A sensor
# batch reads them (staging quarantines suppressed identities; int_touched_users checks for a
# request since the last build) but leaves rebuilding them, and their tests, to the hourly and
# daily runs. A micro-batch already needs a full build first (it reads the daily fits).
LANDING_INDEPENDENT_TAG = "landing_independent"
NOT_WRITTEN = frozenset({"view", "ephemeral"})  # materialisations a batch writes no rows to


def is_guard_test(manifest: Mapping[str, Any], props: Mapping[str, Any]) -> bool:
    """A test that guards a micro-batch's outputs (GUARD_* above)."""
    generic = (props.get("test_metadata") or {}).get("name")
    if not generic:
        return props["name"] in GUARD_SINGULAR_TESTS
    tested = manifest["nodes"].get(props.get("attached_node") or "", {})
    written = (tested.get("config") or {}).get("materialized") not in NOT_WRITTEN
    return generic in GUARD_GENERIC_TESTS and written


def tests_left_for_hourly(manifest: Mapping[str, Any]) -> list[str]:
    """The data tests a sensor-started micro-batch leaves to the hourly and daily runs: all but
    the guards (is_guard_test)."""
    return sorted(
        props["name"]
        for props in manifest["nodes"].values()
        if props["resource_type"] == "test" and not is_guard_test(manifest, props)
    )


def folded_guard_tests(manifest: Mapping[str, Any]) -> list[str]:
    """The folded key guards (guard_keys), which only sensor-started micro-batches run."""
    return sorted(
        props["name"]
        for props in manifest["nodes"].values()
        if props["resource_type"] == "test"
        and (props.get("test_metadata") or {}).get("name") in GUARD_GENERIC_TESTS
    )


def selected_unique_ids(
    manifest: Mapping[str, Any], selected_keys: Iterable[dg.AssetKey]
) -> set[str]:
    """The dbt unique_ids of the models and seeds behind the selected asset keys."""
    selected = set(selected_keys)
    return {
        uid
        for uid, props in manifest["nodes"].items()
        if props["resource_type"] in ("model", "seed", "snapshot")
        and TRANSLATOR.get_asset_key(props) in selected
    }


def exclude_criteria(
    manifest: Mapping[str, Any], excluded: Iterable[str], selected_keys: Iterable[dg.AssetKey]
) -> list[str]:
    """The dbt --exclude criteria for the named tests, as few as dbt needs: `test_name:KIND` for a
    generic test kind left out whole, else the test's name; tests reading no selected model are
    not selected anyway and are left out. dbt resolves each criterion with its graph ancestors
    (about 20 ms each): the 300 names a sensor batch used to list cost it 3-4 s per batch."""
    names = set(excluded)
    tests = {p["name"]: p for p in manifest["nodes"].values() if p["resource_type"] == "test"}
    selected = selected_unique_ids(manifest, selected_keys)
    runnable = {
        name
        for name, props in tests.items()
        if set(manifest["parent_map"].get(props["unique_id"], [])) & selected
    }

    def kind(name: str) -> str | None:
        return (tests[name].get("test_metadata") or {}).get("name") if name in tests else None

    kinds = {kind(name) for name in runnable} - {None}
    whole = {k for k in kinds if all(n in names for n in runnable if kind(n) == k)}
    return [f"test_name:{k}" for k in sorted(whole)] + sorted(
        name for name in names & runnable if kind(name) not in whole
    )


def dbt_build_args(
    manifest: Mapping[str, Any],
    selected_keys: Iterable[dg.AssetKey],
    dbt_vars: Mapping[str, Any],
    sensor_batch: bool,
    unit_tests: bool = True,
) -> list[str]:
    """The `dbt build` arguments of a run (dagster-dbt adds the selection of its assets).

    A sensor-started micro-batch runs only the guard tests, and skips the models a landing file
    cannot change (LANDING_INDEPENDENT_TAG, with their tests); every other run (hourly, daily, a
    manual materialisation) runs every data test of its models, except those reading a
    daily-only model it does not rebuild. Unit tests run only when `unit_tests` (the daily build
    and manual materialisations; never a sensor batch): they test the code on fixed inputs, so
    they cannot fail on new data, and dbt's documentation advises running them in development
    and CI rather than in production builds. The hourly run leaves them to the daily build
    (issue 16: 23 of them, 3.5 s on the hourly's critical path before the segment marts)."""
    selected_keys = list(selected_keys)
    args = ["build", "--vars", json.dumps(dict(dbt_vars))]
    excluded = set(tests_left_for_daily(manifest, selected_keys))
    if sensor_batch:
        excluded |= set(tests_left_for_hourly(manifest))
    else:  # dbt's own key tests check the whole tables: the folded guards would repeat them
        excluded |= set(folded_guard_tests(manifest))
    if sensor_batch or not unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    criteria = exclude_criteria(manifest, excluded, selected_keys)
    if sensor_batch:
        criteria.append(f"tag:{LANDING_INDEPENDENT_TAG}")
    if criteria:
        args += ["--exclude", " ".join(criteria)]
    return args


def release_build_database(adapter: Any) -> None:
    """Close the read-only connection dagster-dbt's metadata queries opened in this process.

    Left open, it would keep the next dbt build (another process) from taking the file's write
    lock, and a plain read-only client of this process from opening the file."""
    if adapter is None:
        return
    adapter.cleanup_connections()
    environment = DuckDBConnectionManager._ENV  # noqa: SLF001 - dbt-duckdb keeps one per process
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()


def manifest_for_database(manifest: Mapping[str, Any], database: str) -> Mapping[str, Any]:
    """The manifest with every model, seed, snapshot and source in `database`.

    dbt-duckdb names the catalog after the database file (data/warehouse.duckdb: `warehouse`), and
    the manifest records the catalog of the file the project was parsed with (the tests parse
    with target/parse.duckdb). dagster-dbt looks relations up by the manifest's database for row
    counts and column schemas, so a run addresses the database it writes, whatever was parsed.
    """

    def move(props: Mapping[str, Any]) -> Mapping[str, Any]:
        parsed = props.get("database")
        if not parsed or parsed == database:
            return props
        moved = {**props, "database": database}
        # relation_name is the quoted "database"."schema"."identifier" (row counts query it)
        prefix = f'"{parsed}".'
        if str(props.get("relation_name") or "").startswith(prefix):
            moved["relation_name"] = f'"{database}".' + props["relation_name"][len(prefix) :]
        return moved

    def moved(nodes: Mapping[str, Any]) -> dict[str, Any]:
        return {uid: move(props) for uid, props in nodes.items()}

    if all(
        props.get("database") in (None, database)
        for nodes in (manifest["nodes"], manifest.get("sources", {}))
        for props in nodes.values()
    ):
        return manifest
    return {**manifest, "nodes": moved(manifest["nodes"]), "sources": moved(manifest["sources"])}


PARTIAL_PARSE = "partial_parse.msgpack"


def warm_target(targets: Path, target: Path) -> None:
    """Start a run's target folder with the parse state the last run left (a warm dbt).

    Every invocation writes its artefacts to a folder of its own, and dbt keeps its partial-parse
    state there: without this, every micro-batch parsed the whole project (about 10 s). dbt
    reuses the state only when the project files, vars, profile and target are unchanged (it
    checks, and parses in full otherwise), so a stale copy costs a full parse, never a wrong one.
    """
    saved = targets / PARTIAL_PARSE
    if saved.is_file():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(saved, target / PARTIAL_PARSE)


def keep_warm(targets: Path, target: Path) -> None:
    """Keep the parse state of this run for the next one (replaced atomically)."""
    produced = target / PARTIAL_PARSE
    if produced.is_file():
        partial = targets / f".{PARTIAL_PARSE}.{uuid.uuid4().hex[:6]}"
        shutil.copy2(produced, partial)
        os.replace(partial, targets / PARTIAL_PARSE)


def mart_view_row_count(invocation: Any, event: Any) -> dict[str, Any] | None:
    """The row count of a mart that is a view (dagster_record.is_counted_view:
    dim_user_profiles), which dagster-dbt's fetch_row_counts leaves out for every view. Tables
    (dagster-dbt counts them) and other views get None."""
    if not isinstance(event, dg.AssetMaterialization | dg.Output) or invocation.adapter is None:
        return None
    unique_id = event.metadata["unique_id"].text
    props = invocation.manifest["nodes"].get(unique_id) or {}
    if not is_counted_view(props):
        return None
    adapter = invocation.adapter
    # from the project folder, as dagster-dbt counts: the database path may be relative to it
    with contextlib.chdir(invocation.project_dir), adapter.connection_named(f"count_{unique_id}"):
        _, table = adapter.execute(f"select count(*) from {props['relation_name']}", fetch=True)
    return {"dagster/row_count": dg.MetadataValue.int(int(table[0][0]))}  # dagster-dbt's key


def with_table_metadata(stream: Any, sensor_batch: bool) -> Any:
    """The dbt event stream, with row counts and column schemas on every materialisation
    (dagster-dbt's own helpers; for DuckDB they query once dbt has exited and released the file's
    lock; the row counts of mart views by mart_view_row_count, through the same helper) except
    on a sensor-started micro-batch: there the queries (one per model, each waiting for the
    file) cost about a minute, more than the batch itself. The hourly and daily runs record both
    for the same assets."""
    if sensor_batch:
        return stream
    counted = stream.fetch_row_counts()._attach_metadata(mart_view_row_count)  # noqa: SLF001
    return counted.fetch_column_metadata(with_column_lineage=False)


WARM_DBT_ENV = "PERSONALIZATION_WARM_DBT"  # "0": sensor batches start a plain dbt process


def warm_executable() -> str | None:
    """The warm server's client (`personalization-warm-dbt`) of this environment, if installed."""
    candidate = Path(sys.executable).with_name("personalization-warm-dbt")
    return str(candidate) if candidate.exists() else None


class WarmDbtCliResource(DbtCliResource):
    """dagster-dbt's resource on the warm server's client, without the dbt adapter dagster-dbt
    builds in this process before every command (1.4-3 s of CPU: profile, project and macros
    loaded again). That adapter serves the row-count and column queries only, which sensor
    batches skip (with_table_metadata)."""

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        return None


@functools.cache
def _warm_resource(
    executable: str, project_dir: str, profiles_dir: str | None, flags: tuple[str, ...]
) -> DbtCliResource:
    return WarmDbtCliResource(
        project_dir=project_dir,
        profiles_dir=profiles_dir,
        dbt_executable=executable,
        global_config_flags=list(flags),
    )


def warm_dbt_resource(dbt: DbtCliResource) -> DbtCliResource | None:
    """The run's dbt resource, through the warm micro-batch server (personalization/warm_dbt.py):
    no process start-up, no imports, no parse per batch. One instance per configuration, so
    dagster-dbt asks the version once. None when the warm path is off or not installed."""
    executable = warm_executable()
    if os.environ.get(WARM_DBT_ENV, "1") == "0" or executable is None or dbt.target or dbt.profile:
        return None
    return _warm_resource(
        executable, str(dbt.project_dir), dbt.profiles_dir, tuple(dbt.global_config_flags)
    )


def warm_up_micro_batches(dbt: DbtCliResource, warehouse: WarehouseResource) -> bool:
    """Start the warm server and have it parse the project for this warehouse's micro-batch
    vars, so the first batch runs on a cached manifest like every later one (the micro-batch
    worker calls it when it starts: its first batch took 16 s at 1M events instead of 10 s).
    The command is `dbt ls` of one model, the cheapest on the manifest; its arguments carry the
    same vars, target and flags as a batch's `dbt build`, hence the same manifest key. False when
    the warm path is off, or the command failed (the first batch then parses, as before)."""
    warm = warm_dbt_resource(dbt)
    if warm is None:
        return False
    target = warehouse.targets() / "warm-up"
    args = ["ls", "--vars", json.dumps(warehouse.dbt_vars()), "--select", "int_touched_users"]
    with warehouse.dbt_env(), warm_socket(warehouse.targets()):
        invocation = warm.cli(args, target_path=target, raise_on_error=False)
        invocation.wait()
    return invocation.is_successful()


@contextlib.contextmanager
def warm_socket(targets: Path) -> Iterator[None]:
    """Point the warm client at the server of this folder of dbt artefacts (started on first
    use; it stops after PERSONALIZATION_WARM_DBT_IDLE_SECONDS without a batch)."""
    saved = os.environ.get(warm_dbt.SOCKET_ENV)
    os.environ[warm_dbt.SOCKET_ENV] = str(warm_dbt.socket_path(targets))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(warm_dbt.SOCKET_ENV, None)
        else:
            os.environ[warm_dbt.SOCKET_ENV] = saved


@dbt_assets(
    manifest=DBT_MANIFEST,
    project=DBT_PROJECT,
    dagster_dbt_translator=TRANSLATOR,
    pool=DUCKDB_POOL,
    retry_policy=DBT_RETRY,
)
def dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """`dbt build` of the selected models and their tests (a subset when a job selects one)."""
    target = warehouse.targets() / f"{context.run.run_id[:8]}-{uuid.uuid4().hex[:6]}"
    reference = warehouse.reference_time()
    # the run says which reference time it built at, and why (the same rule as every entry point)
    context.instance.add_run_tags(
        context.run.run_id,
        {AS_OF_TAG: reference.as_of or "now", AS_OF_SOURCE_TAG: reference.source},
    )
    context.log.info("building at as_of %s", reference.describe())
    sensor_batch = SENSOR_BATCH_TAG in context.run.tags
    incremental = context.run.tags.get(RUN_KIND_TAG) == INCREMENTAL_KIND
    args = dbt_build_args(
        DBT_MANIFEST,
        context.selected_asset_keys,
        warehouse.dbt_vars(),
        sensor_batch=sensor_batch,
        unit_tests=not incremental,
    )
    # a sensor batch runs in the warm server on its cached manifest; other runs start dbt and
    # reuse the partial-parse state the last one left
    warm = warm_dbt_resource(dbt) if sensor_batch else None
    if warm is None:
        warm_target(warehouse.targets(), target)
    socket = warm_socket(warehouse.targets()) if warm else contextlib.nullcontext()
    with warehouse.dbt_env(), socket:
        invocation = (warm or dbt).cli(args, context=context, target_path=target)
        invocation.manifest = manifest_for_database(
            invocation.manifest, DuckDBCredentials.path_derived_database_name(warehouse.db())
        )
    try:
        yield from with_table_metadata(invocation.stream(), sensor_batch)
    except DagsterDbtCliRuntimeError as error:
        if _failure_is_transient(invocation, error):
            raise  # retried by DBT_RETRY
        raise dg.Failure(
            description=f"dbt build failed (a test or a model error; not retried): {error}",
            allow_retries=False,
        ) from error
    except Exception as error:  # anything else is a bug or a stale manifest: retrying won't help
        raise dg.Failure(
            description=f"dbt build failed ({type(error).__name__}: {error}); not retried",
            allow_retries=False,
        ) from error
    finally:
        release_build_database(invocation.adapter)
        if warm is None:  # (dagster-dbt puts the project's own parse state in a warm run's target)
            keep_warm(warehouse.targets(), target)
