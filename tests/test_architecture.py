"""The package structure of docs/architecture.md, checked: every import of steerseg_core/, ui/ and
app.py (module level and inside functions, read with ast) flows one way, with no cycle; library code
imports neither the CLI, nor the test fixtures, nor gradio; only config.py reads the environment;
and ``python -m steerseg_core --help`` stays light (no torch, transformers or scipy)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "scipy")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [*sorted((ROOT / "steerseg_core").rglob("*.py")), *sorted((ROOT / "ui").rglob("*.py")), ROOT / "app.py"]
    return {_module_name(p): p for p in files if "__pycache__" not in p.parts}


SOURCES = _sources()


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports anywhere in its file (absolute names; ``from pkg import mod``
    counts as importing ``pkg.mod`` when that is a module of ours)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in SOURCES]
            out.update(subs)
            if len(subs) < len(node.names):  # names from the module itself
                out.add(target)
    return out


IMPORTS = {name: _imports(name, path) for name, path in SOURCES.items()}


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _is_cli(module: str) -> bool:
    return _in(module, "steerseg_core.cli") or module == "steerseg_core.__main__"


def _is_library(module: str) -> bool:
    return _in(module, "steerseg_core") and not _is_cli(module) and not _in(module, "steerseg_core.testing")


def test_the_walk_sees_the_project():
    assert {"steerseg_core.pipeline", "steerseg_core.grounding.grounder", "steerseg_core.cli", "ui.segment",
            "app"} <= set(SOURCES)
    assert "steerseg_core.grounding.rollout" in IMPORTS["steerseg_core.grounding.grounder"]
    assert "steerseg_core.config" in IMPORTS["steerseg_core.grounding.grounder"]  # relative ..config
    # function-level imports count too
    assert "steerseg_core.segment.points" in IMPORTS["steerseg_core.visualize"]


def test_no_import_cycle_between_modules():
    ours = {m: {t for t in targets if t in SOURCES and t != m} for m, targets in IMPORTS.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(ours[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(ours):
        if v not in index:
            visit(v)
    assert cycles == []


def test_library_imports_no_cli_no_test_fixtures_no_gradio():
    bad = {m: sorted(t for t in targets if _is_cli(t) or _in(t, "steerseg_core.testing") or _in(t, "gradio"))
           for m, targets in IMPORTS.items() if _is_library(m)}
    assert {m: t for m, t in bad.items() if t} == {}


def test_only_the_cli_imports_the_cli():
    bad = {m: sorted(t for t in targets if _is_cli(t)) for m, targets in IMPORTS.items() if not _is_cli(m)}
    assert {m: t for m, t in bad.items() if t} == {}


def test_only_config_reads_the_environment():
    """steerseg_core reads environment variables in config.py alone; the rest receives config objects."""
    readers = []
    for name, path in SOURCES.items():
        if not _in(name, "steerseg_core") or name == "steerseg_core.config":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            attr = node.attr if isinstance(node, ast.Attribute) else None
            imported = [a.name for a in node.names] if isinstance(node, ast.ImportFrom) and node.module == "os" else []
            if attr in ("environ", "environb", "getenv", "putenv") or {"environ", "getenv"} & set(imported):
                readers.append(f"{name}:{node.lineno}")
    assert readers == []


def test_cli_help_imports_no_heavy_library():
    """The top-level --help builds every subcommand's parser, so this covers them all."""
    argv = ["--help"]
    probe = ("import runpy, sys\n"
             f"sys.argv = ['steerseg_core', *{argv!r}]\n"
             "try:\n    runpy.run_module('steerseg_core', run_name='__main__', alter_sys=True)\n"
             "except SystemExit as e:\n    code = e.code\n"
             f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
             "print('HEAVY', heavy, 'EXIT', code, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "HEAVY [] EXIT 0" in done.stderr, done.stderr[-2000:]
    assert "usage:" in done.stdout


def test_every_reported_stage_has_a_progress_span_in_the_app():
    """Renaming a stage cannot silently break the app's progress bar."""
    from steerseg_core.stages import Stage
    from ui.segment import STAGE_SPAN

    assert {stage.group for stage in Stage} == set(STAGE_SPAN)
    for stage in Stage:  # the app looks a reported stage up by the text before ':'
        assert STAGE_SPAN[str(stage).split(":")[0]] == STAGE_SPAN[stage.group]
