"""The package's dependency rules (design.md), enforced by reading imports with ``ast``.

No module of ``leadersim`` is imported to check it: every ``.py`` file under the package is
parsed and its ``import`` statements (and ``importlib.import_module("...")`` /
``__import__("...")`` calls with a literal name) are classified as module level or lazy
(inside a function body), and as runtime or ``if TYPE_CHECKING:`` only.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "leadersim"

#: Modules that must stay pure: stdlib only (no asyncio), plus each other.
PURE_FILES = ("record.py", "config.py", "errors.py", "trace.py", "faults.py")
PURE_MODULES = (
    "leadersim.errors",
    "leadersim.record",
    "leadersim.config",
    "leadersim.trace",
    "leadersim.faults",
)
BANNED_IN_PURE = frozenset({"asyncio", "simpy"})

ELECTOR_BANNED = frozenset({"simpy", "sqlite3", "aiosqlite", "pandas", "matplotlib", "sqlalchemy"})
#: design.md: the elector "imports only the modules above + storage.base".
ELECTOR_MAY_IMPORT = (*PURE_MODULES, "leadersim.clock", "leadersim.storage.base")

DRAWING_LIBRARIES = frozenset({"pandas", "matplotlib"})

#: Why a module must not import the analysis: its own rule, so that the one place that
#: still breaks it (the scenario catalogue) is tracked by an expected failure of its own.
SIM_IMPORTS_ANALYSIS = "sim/ runs worlds and never imports the analysis"

#: Private names (``_name``) one module of the package imports from another, each with
#: why it is not public yet. Anything else imported with a leading underscore across
#: modules is a violation: a rule used in two places belongs to a public home.
# (importing module, private name) pairs allowed across modules, each with its reason; none
# now (explore and sweep share sweep's public run_one/collect_runs/check_picklable and
# experiment's apply_overrides). A test fails if an entry's import disappears.
PRIVATE_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@dataclasses.dataclass(frozen=True)
class Import:
    """One imported name, resolved to an absolute dotted path."""

    target: str
    line: int
    lazy: bool  # inside a function body: runs only when called
    type_checking: bool  # under ``if TYPE_CHECKING:``: never runs

    @property
    def top(self) -> str:
        return self.target.partition(".")[0]


def module_name(relpath: str) -> tuple[str, bool]:
    """``"sim/loop.py"`` → (``"leadersim.sim.loop"``, is_package=False)."""
    parts = ["leadersim", *Path(relpath).with_suffix("").parts]
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _dynamic_import_name(call: ast.Call) -> str | None:
    func = call.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    if name not in {"import_module", "__import__"} or not call.args:
        return None
    first = call.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def collect_imports(source: str, relpath: str) -> list[Import]:
    """Every import in ``source``, the text of ``leadersim/<relpath>``."""
    module, is_package = module_name(relpath)
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []

    def resolve(name: str | None, level: int) -> str:
        if level == 0:
            return name or ""
        base = package.split(".")
        if level > 1:
            base = base[: -(level - 1)]
        return ".".join([*base, name] if name else base)

    def visit(node: ast.AST, lazy: bool, tc: bool) -> None:
        def add(target: str) -> None:
            found.append(Import(target, getattr(node, "lineno", 0), lazy, tc))

        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node.module, node.level)
            add(base)
            for alias in node.names:
                if alias.name != "*":
                    add(f"{base}.{alias.name}")
        elif isinstance(node, ast.Call) and (name := _dynamic_import_name(node)):
            add(name)

        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                visit(stmt, lazy, True)
            for stmt in node.orelse:
                visit(stmt, lazy, tc)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            # decorators, defaults and annotations run at definition; the body runs later
            body = node.body if isinstance(node.body, list) else [node.body]
            body_ids = {id(stmt) for stmt in body}
            for child in ast.iter_child_nodes(node):
                visit(child, lazy or id(child) in body_ids, tc)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, lazy, tc)

    visit(ast.parse(source, filename=relpath), lazy=False, tc=False)
    return found


def _within(target: str, modules: tuple[str, ...] | str) -> bool:
    if isinstance(modules, str):
        modules = (modules,)
    return any(target == m or target.startswith(m + ".") for m in modules)


def _is_stdlib(imp: Import) -> bool:
    return imp.top in sys.stdlib_module_names or imp.top == "__future__"


def check_module(relpath: str, source: str) -> list[str]:
    """The dependency-rule violations of ``leadersim/<relpath>`` with this ``source``."""
    violations: list[str] = []

    def flag(imp: Import, why: str) -> None:
        violations.append(f"leadersim/{relpath}:{imp.line}: imports {imp.target}: {why}")

    in_sim = relpath.startswith("sim/")
    in_analysis = relpath.startswith("analysis/")
    in_storage = relpath.startswith("storage/")
    module, _ = module_name(relpath)
    may_draw = in_analysis or relpath == "sweep.py" or Path(relpath).name == "plots.py"

    for imp in collect_imports(source, relpath):
        if relpath in PURE_FILES:
            if imp.top in BANNED_IN_PURE:
                flag(imp, "record/config/errors/trace must not use asyncio or simpy")
            elif imp.top == "leadersim":
                if not (
                    imp.target == "leadersim"
                    or _within(imp.target, PURE_MODULES)
                    or imp.type_checking
                ):
                    flag(imp, "a pure module may import only the other pure modules")
            elif not _is_stdlib(imp):
                flag(imp, "record/config/errors/trace are stdlib only")

        if relpath == "elector.py":
            if imp.top in ELECTOR_BANNED:
                flag(imp, "the elector must not depend on a back-end, simpy or pandas")
            elif imp.top == "leadersim" and not (
                imp.target == "leadersim" or _within(imp.target, ELECTOR_MAY_IMPORT)
            ):
                flag(imp, "the elector imports only the pure modules, clock and storage.base")

        if imp.top == "simpy" and not in_sim:
            flag(imp, "only leadersim/sim/ imports simpy")

        if imp.top in DRAWING_LIBRARIES and not may_draw and not imp.lazy and not imp.type_checking:
            flag(imp, "only analysis/ (and sweep, plots) import pandas/matplotlib at module level")

        if in_analysis and _within(imp.target, "leadersim.sim"):
            flag(imp, "analysis/ reads traces and never imports the simulator")

        if in_sim and _within(imp.target, "leadersim.analysis"):
            flag(imp, SIM_IMPORTS_ANALYSIS)

        if in_storage and _within(imp.target, ("leadersim.sim", "leadersim.analysis")):
            flag(imp, "storage/ is used by the simulator and the analysis, never the reverse")

        owner, _, name = imp.target.rpartition(".")
        if (
            imp.top == "leadersim"
            and _is_private(name)
            and owner != module
            and (relpath, imp.target) not in PRIVATE_IMPORTS_ALLOWED
        ):
            flag(imp, "a private name is that module's own: make it public where it lives")

    return violations


def package_sources() -> Iterator[tuple[str, str]]:
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        yield path.relative_to(PACKAGE_DIR).as_posix(), path.read_text(encoding="utf-8")


# ---------------------------------------------------------------- the real tree


def _real_violations() -> list[str]:
    sources = dict(package_sources())
    assert set(PURE_FILES) | {"elector.py", "__init__.py"} <= set(sources)
    return [v for relpath, text in sources.items() for v in check_module(relpath, text)]


def test_the_package_follows_the_dependency_rules() -> None:
    # Includes sim/ never importing the analysis (the catalogue is data; judging runs is
    # leadersim/catalogue.py's).
    violations = _real_violations()
    assert violations == [], "\n".join(violations)


def test_every_allowed_private_import_still_exists() -> None:
    # an allow-list entry whose import is gone would silently allow it again later
    seen = {
        (relpath, imp.target)
        for relpath, text in package_sources()
        for imp in collect_imports(text, relpath)
    }
    assert set(PRIVATE_IMPORTS_ALLOWED) <= seen, set(PRIVATE_IMPORTS_ALLOWED) - seen


def test_the_import_reader_sees_the_real_imports_of_the_elector() -> None:
    source = (PACKAGE_DIR / "elector.py").read_text(encoding="utf-8")
    targets = {imp.target for imp in collect_imports(source, "elector.py")}
    assert {"asyncio", "leadersim.record", "leadersim.storage.base"} <= targets


#: Exception classes of the package outside the LeadersimError tree, each with why: none
#: of them reaches a user.
OUTSIDE_THE_ERROR_TREE = {
    ("errors.py", "LeadersimError"): "the root of the tree",
    ("errors.py", "SafetyWarning"): "a warning, emitted, never raised",
    ("cli.py", "UsageError"): "the CLI's own signal, turned into one line and exit 2 in main",
    ("elector.py", "_RenewGaveUp"): "the elector's control flow, caught inside the elector",
    ("testing.py", "_FnFailedError"): "the test helper's control flow, caught where raised",
}


def test_every_error_the_package_defines_is_in_the_leadersim_error_tree() -> None:
    # read from the source: a class whose only bases are builtin exceptions is outside
    # the tree (errors.py draws it), unless listed above with its reason
    outside = set()
    for relpath, text in package_sources():
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = [getattr(b, "id", getattr(b, "attr", "")) for b in node.bases]
            builtin = [n for n in bases if isinstance(getattr(builtins, n, None), type)]
            if (
                bases
                and len(builtin) == len(bases)
                and all(issubclass(getattr(builtins, n), BaseException) for n in builtin)
            ):
                outside.add((relpath, node.name))
    assert outside == set(OUTSIDE_THE_ERROR_TREE), outside ^ set(OUTSIDE_THE_ERROR_TREE)


# ---------------------------------------------------------------- the checker itself

VIOLATING = [
    pytest.param("record.py", "import asyncio", id="pure-asyncio"),
    pytest.param("trace.py", "from asyncio import Event", id="pure-from-asyncio"),
    pytest.param("config.py", "import simpy", id="pure-simpy"),
    pytest.param("errors.py", "import numpy", id="pure-third-party"),
    pytest.param("record.py", "def f():\n    import aiosqlite", id="pure-lazy-third-party"),
    pytest.param("record.py", "from leadersim.elector import Elector", id="pure-imports-elector"),
    pytest.param("trace.py", "from . import clock", id="pure-relative-impure"),
    pytest.param("config.py", "import importlib\nimportlib.import_module('asyncio')", id="dyn"),
    pytest.param("config.py", "if TYPE_CHECKING:\n    import simpy", id="pure-tc-simpy"),
    pytest.param("elector.py", "import sqlite3", id="elector-sqlite3"),
    pytest.param("elector.py", "def f():\n    import aiosqlite", id="elector-lazy-aiosqlite"),
    pytest.param("elector.py", "import pandas as pd", id="elector-pandas"),
    pytest.param("elector.py", "from sqlalchemy import text", id="elector-sqlalchemy"),
    pytest.param("elector.py", "import matplotlib.pyplot", id="elector-matplotlib"),
    pytest.param("elector.py", "from leadersim.storage.sqlite import X", id="elector-backend"),
    pytest.param("elector.py", "from leadersim.sim import loop", id="elector-sim"),
    pytest.param("lab.py", "import simpy", id="simpy-outside-sim"),
    pytest.param("storage/sqlite.py", "def f():\n    import simpy", id="lazy-simpy"),
    pytest.param("analysis/intervals.py", "from simpy import Environment", id="analysis-simpy"),
    pytest.param("cli.py", "import pandas", id="cli-pandas"),
    pytest.param("lab.py", "from matplotlib import pyplot", id="lab-matplotlib"),
    pytest.param("cli.py", "try:\n    import pandas\nexcept ImportError:\n    pass", id="try"),
    pytest.param("cli.py", "class A:\n    import pandas", id="class-body-is-eager"),
    pytest.param("__init__.py", "from leadersim.analysis import plots\nimport pandas", id="init"),
    pytest.param("analysis/intervals.py", "from leadersim.sim import world", id="analysis-sim"),
    pytest.param("analysis/intervals.py", "import leadersim.sim.world", id="analysis-sim-2"),
    pytest.param("analysis/intervals.py", "from ..sim import world", id="analysis-rel-sim"),
    pytest.param("analysis/plots.py", "from ..sim.world import Result", id="analysis-rel-2"),
    pytest.param("analysis/plots.py", "def f():\n    from leadersim import sim", id="lazy"),
    pytest.param("sim/scenarios.py", "from leadersim.analysis import intervals", id="sim-analysis"),
    pytest.param("sim/world.py", "import leadersim.analysis.result", id="sim-analysis-2"),
    pytest.param("sim/scenarios.py", "from ..analysis.intervals import x", id="sim-rel-analysis"),
    pytest.param(
        "sim/world.py", "def f():\n    from leadersim.analysis import frames", id="sim-lazy"
    ),
    pytest.param(
        "sim/world.py", "if TYPE_CHECKING:\n    from leadersim.analysis import R", id="sim-tc"
    ),
    pytest.param("sim/world.py", "from leadersim.analysis import intervals", id="sim-an"),
    pytest.param("sim/world.py", "def f():\n    from ..analysis import frames", id="sim-lazy-an"),
    pytest.param("storage/sqlite.py", "from leadersim.sim import loop", id="storage-sim"),
    pytest.param("storage/orm.py", "from ..analysis.result import R", id="storage-analysis"),
    pytest.param("lab.py", "from leadersim.sim.world import _Node", id="private-import"),
    pytest.param("cli.py", "def f():\n    from .lab import _SIGNAL_FAULTS", id="private-lazy"),
    pytest.param("sweep.py", "from leadersim.experiment import _other", id="private-not-allowed"),
]

ALLOWED = [
    pytest.param("record.py", "import json\nfrom leadersim.errors import X", id="pure-ok"),
    pytest.param("config.py", "if TYPE_CHECKING:\n    from leadersim.storage.base import S"),
    pytest.param("elector.py", "import asyncio\nfrom leadersim.storage.base import S"),
    pytest.param("sim/loop.py", "import simpy", id="sim-simpy"),
    pytest.param("sim/world.py", "from .. import record\nfrom . import loop", id="sim-rel"),
    pytest.param("analysis/intervals.py", "import pandas as pd", id="analysis-pandas"),
    pytest.param("analysis/plots.py", "import matplotlib.pyplot as plt", id="analysis-mpl"),
    pytest.param("analysis/intervals.py", "from leadersim.trace import X", id="analysis-trace"),
    pytest.param("sweep.py", "import pandas\nfrom leadersim.sim import world", id="sweep"),
    pytest.param("cli.py", "def plot():\n    import matplotlib.pyplot", id="cli-lazy"),
    pytest.param("lab.py", "if TYPE_CHECKING:\n    import pandas", id="lab-tc-pandas"),
    pytest.param("lab.py", "import sqlite3\nfrom leadersim.elector import E", id="lab"),
    pytest.param("catalogue.py", "from leadersim.analysis import x\nfrom leadersim.sim import y"),
    pytest.param("sim/world.py", "from leadersim.trace import EventKind", id="sim-trace"),
    pytest.param("storage/sqlite.py", "from leadersim.storage.base import S", id="storage"),
    pytest.param("lab.py", "from leadersim.trace import __all__", id="dunder-is-not-private"),
    pytest.param("lab.py", "import os\nos._exit", id="attribute-is-not-an-import"),
]


@pytest.mark.parametrize(("relpath", "source"), VIOLATING)
def test_the_checker_flags_a_violating_source(relpath: str, source: str) -> None:
    violations = check_module(relpath, textwrap.dedent(source))
    assert violations, f"no violation found in leadersim/{relpath}:\n{source}"
    assert all(v.startswith(f"leadersim/{relpath}:") for v in violations)


@pytest.mark.parametrize(("relpath", "source"), ALLOWED)
def test_the_checker_accepts_an_allowed_source(relpath: str, source: str) -> None:
    assert check_module(relpath, textwrap.dedent(source)) == []


def test_a_violation_names_the_file_line_and_import() -> None:
    source = "import json\n\n\ndef f():\n    import sqlite3\n"
    assert check_module("elector.py", source) == [
        "leadersim/elector.py:5: imports sqlite3: "
        "the elector must not depend on a back-end, simpy or pandas"
    ]


# ---------------------------------------------------------------- import leadersim stays light

_PROBE = """
import json, sys
{imports}
print(json.dumps(sorted(m for m in ("pandas", "matplotlib", "simpy") if m in sys.modules)))
"""


def _heavy_modules_after(imports: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(imports=imports)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_import_leadersim_loads_no_pandas_matplotlib_or_simpy() -> None:
    assert _heavy_modules_after("import leadersim") == []


def test_the_lightness_probe_sees_a_heavy_import() -> None:
    assert _heavy_modules_after("import leadersim\nimport simpy") == ["simpy"]
