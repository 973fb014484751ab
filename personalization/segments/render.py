"""Render fct_segment_membership's SQL in Python, from the project's own macros, without dbt.

`segments preview` needs the SQL of one segment while the analyst types; a dbt invocation
(start-up, parse, compile) takes 20-30 s. The rules are compiled by the project's Jinja macros
(macros/segments/*.sql and the helpers they call), so this module renders the model
models/marts/segments/fct_segment_membership.sql with those same macro files and a small stand-in
for the parts of dbt's Jinja context they use: `return`, `var`, `ref`, `adapter.dispatch`,
`modules`, `tojson`, `exceptions`, and dbt's own `dateadd` (loaded from the installed adapter's
macro files, so the SQL text is the adapter's). `ref(name)` resolves to the relation of that
name in the warehouse. tests/test_segments_preview.py checks that the rendered SQL equals the SQL
dbt compiles for the same definitions, character for character.

Definitions are validated in Python first (personalization.segments.validate); the Jinja
validation (which needs dbt's graph) is skipped here, as in dbt unit tests.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import pytz
import yaml

from personalization.tracking_plan import PROJECT_ROOT

log = logging.getLogger(__name__)

MODEL = PROJECT_ROOT / "models" / "marts" / "segments" / "fct_segment_membership.sql"
ADAPTER = "duckdb"


class RenderError(RuntimeError):
    """A macro raised a compiler error, or a ref() names a relation the warehouse lacks."""


class _MacroReturn(Exception):  # noqa: N818 - dbt's control flow, not an error
    def __init__(self, value: Any) -> None:
        self.value = value


def _return(value: Any) -> None:
    raise _MacroReturn(value)


def _raise_compiler_error(message: str) -> None:
    raise RenderError(message)


def _tojson(value: Any, default: Any = None, sort_keys: bool = False) -> Any:
    try:
        return json.dumps(value, sort_keys=sort_keys)
    except ValueError:
        return default


MACRO_NAME = re.compile(r"{%-?\s*macro\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(")


class _Namespace:
    """`personalization.x(...)` / `dbt.x(...)`: the macro x, with dbt's `return` semantics.

    Macro files are compiled on first use of one of their macros (compiling every project macro
    file up front costs about a second; the segment SQL needs a third of them)."""

    def __init__(self, files: list[Path], load: Callable[[Path], dict[str, Any]]) -> None:
        self._files = {
            name: path for path in files for name in MACRO_NAME.findall(path.read_text())
        }
        self._load = load
        self._macros: dict[str, Any] = {}

    def names(self) -> list[str]:
        return list(self._files)

    def has(self, name: str) -> bool:
        return name in self._files

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in self._files:
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if name not in self._macros:
                self._macros.update(self._load(self._files[name]))
            try:
                return self._macros[name](*args, **kwargs)
            except _MacroReturn as returned:
                return returned.value

        return call


class _Column:
    """dbt's api.Column.translate_type, as dbt-adapters' base Column (DuckDB keeps it)."""

    TYPE_LABELS = {"STRING": "TEXT"}

    @classmethod
    def translate_type(cls, dtype: str) -> str:
        return cls.TYPE_LABELS.get(dtype.upper(), dtype)


class _Adapter:
    type_name = ADAPTER

    def __init__(self, namespaces: Mapping[str, _Namespace]) -> None:
        self._namespaces = namespaces

    def type(self) -> str:
        return self.type_name

    def dispatch(self, name: str, macro_namespace: str = "personalization") -> Callable[..., Any]:
        namespace = self._namespaces[macro_namespace]
        for candidate in (f"{ADAPTER}__{name}", f"default__{name}", name):
            if namespace.has(candidate):
                return getattr(namespace, candidate)
        raise RenderError(f"no macro {name} for adapter {ADAPTER} in {macro_namespace}")


_ENV = jinja2.Environment(extensions=["jinja2.ext.do"], autoescape=False)  # noqa: S701 - SQL


@cache
def _compiled(path: Path, mtime_ns: int) -> jinja2.Template:
    """A file compiled once per process (and again when it changes): most of a render's cost."""
    return _ENV.from_string(path.read_text())


def _template(path: Path) -> jinja2.Template:
    return _compiled(path, path.stat().st_mtime_ns)


def _macro_files(root: Path = PROJECT_ROOT) -> list[Path]:
    return sorted((root / "macros").rglob("*.sql"))


def _dbt_macro_files() -> list[Path]:
    """dbt's own macros the segment SQL calls (dateadd, type_string), from the installed
    packages (located without importing them: importing dbt takes seconds)."""
    roots = {}
    for package in ("global_project", "duckdb"):
        spec = importlib.util.find_spec(f"dbt.include.{package}")
        if spec is None or not spec.submodule_search_locations:
            raise RenderError(f"dbt.include.{package} is not installed")
        roots[package] = Path(next(iter(spec.submodule_search_locations)))
    return [
        roots["global_project"] / "macros" / "utils" / "dateadd.sql",
        roots["global_project"] / "macros" / "utils" / "data_types.sql",
        roots["duckdb"] / "macros" / "utils" / "dateadd.sql",
    ]


@cache
def _project_vars() -> dict[str, Any]:
    project = yaml.safe_load((PROJECT_ROOT / "dbt_project.yml").read_text())
    return dict(project.get("vars") or {})


class Renderer:
    """The project's macros, loaded on first use; render(definitions, ...) gives the model's SQL."""

    def __init__(
        self, relation: Callable[[str], str], root: Path = PROJECT_ROOT, model: Path = MODEL
    ) -> None:
        """`root`: the dbt project whose macros/ are used (another checkout for a benchmark of an
        older compiler); `model`: the model file rendered."""
        self.relation = relation
        self.model = model
        self.vars: dict[str, Any] = {}
        namespaces = {
            "personalization": _Namespace(_macro_files(root), self._load),
            "dbt": _Namespace(_dbt_macro_files(), self._load),
        }
        self.context: dict[str, Any] = {
            **_ENV.globals,  # range, dict, namespace, ... (a shared context does not add them)
            "return": _return,
            "var": self._var,
            "env_var": self._env_var,
            "ref": self.relation,
            # the rendered SQL is the model's full build: config() renders nothing, no `this`
            # (the touched-user filters render `true`, as in dbt's full build)
            "config": lambda *args, **kwargs: "",
            "is_incremental": lambda: False,
            "this": None,
            "execute": True,
            "graph": {},  # no dbt graph: the Jinja validation is skipped (validated in Python)
            "modules": {"datetime": datetime, "pytz": pytz, "re": re},
            "tojson": _tojson,
            "exceptions": {"raise_compiler_error": _raise_compiler_error},
            "adapter": _Adapter(namespaces),
            "api": {"Column": _Column},
            **namespaces,
        }
        # every project macro is also a global name (dbt puts the root project's macros there)
        project = namespaces["personalization"]
        self.context.update({name: getattr(project, name) for name in project.names()})

    def _load(self, path: Path) -> dict[str, Any]:
        """The macros of one file; their free names resolve in self.context when they run."""
        module = _template(path).make_module(vars=self.context, shared=True)
        return {name: getattr(module, name) for name in dir(module) if not name.startswith("_")}

    def _var(self, name: str, default: Any = None) -> Any:
        if name in self.vars:
            return self.vars[name]
        return _project_vars().get(name, default)

    @staticmethod
    def _env_var(name: str, default: str | None = None) -> str | None:
        return os.environ.get(name, default)

    def render(self, definitions: list[dict[str, Any]], dbt_vars: Mapping[str, Any]) -> str:
        self.vars = {**dbt_vars, "segment_definitions": definitions}
        try:
            return _template(self.model).render(self.context)
        except _MacroReturn as returned:  # a bare {{ return() }} in the model
            return str(returned.value)


def render_membership_sql(
    definitions: list[dict[str, Any]],
    relation: Callable[[str], str],
    dbt_vars: Mapping[str, Any] | None = None,
) -> str:
    """The SQL of fct_segment_membership for `definitions` (already validated); `relation(name)`
    gives the relation a ref(name) compiles to; `dbt_vars` as passed to dbt (as_of, ...)."""
    return Renderer(relation).render(definitions, dbt_vars or {})


def main(argv: list[str] | None = None) -> int:
    """Write the SQL the segment macros generate for the shipped definitions (as_of fixed,
    relations as schema.name) to OUT/fct_segment_membership.sql, for `make lint`:
    sqlfluff's dbt templater does not lint what macros generate, so this file is linted raw."""
    import argparse

    from personalization.segments import validate

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    document = yaml.safe_load(validate.SEGMENTS_PATH.read_text())
    definitions = list(validate.segment_definitions(document) or [])
    sql = render_membership_sql(
        definitions,
        lambda name: f"{name.split('_')[0]}.{name}",
        {"as_of": "2026-01-01T00:00:00Z"},
    )
    args.out.mkdir(parents=True, exist_ok=True)
    # the model's own leading/trailing whitespace is linted by the templated pass
    (args.out / "fct_segment_membership.sql").write_text(sql.strip() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
