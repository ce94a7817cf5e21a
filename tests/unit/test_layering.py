"""The package graph follows the layering of the README's "What is inside" table: every import
of ltray's and the dashboard's modules (at the top or inside a function) goes to a package the
table allows, the heavy edges (Ray, Optuna, Dash) stay where they belong, and no two modules
import each other. Then the same checked for real: what importing a layer pulls in."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# package -> the ltray packages it may import (besides itself and errors); "ltray.*" module names
ALLOWED = {
    "core": set(),
    "results": {"core"},
    "methods": {"core"},
    "datasets": {"core"},
    "models": set(),
    "config": {"core", "results", "methods", "datasets", "models"},
    "train": {"core", "results", "methods", "datasets", "models", "config"},
    "report": {"core", "results", "datasets"},
    "sweep": {"core", "results", "methods", "datasets", "models", "config", "train", "report"},
    "dashboard": {"core", "results", "report"},
}
# the compatibility shims at ltray's top: each re-exports what moved from it
SHIMS = {"data": {"datasets"}, "experiment": {"config"}, "space": {"methods"}, "query": {"report"},
         "submit": {"sweep"}, "recovery": {"results", "sweep"}}
# third-party packages a layer must never import
FORBIDDEN = {"core": {"ray", "optuna", "dash", "plotly"}, "methods": {"ray", "optuna", "dash", "plotly"},
             "datasets": {"ray", "optuna", "dash"}, "models": {"ray", "optuna", "dash"},
             "results": {"ray", "dash", "plotly"}, "config": {"ray", "optuna", "dash"},
             "train": {"ray", "optuna", "dash"}, "report": {"ray", "optuna", "dash"}, "dashboard": {"ray"}}


def _modules() -> dict[str, Path]:
    out = {}
    for top in ("ltray", "dashboard"):
        for p in (ROOT / top).rglob("*.py"):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(path: Path) -> list[str]:
    """Every module name an import statement of the file names (from-imports with each name, as
    ``from ltray.sweep import progress`` imports the module ``ltray.sweep.progress``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def _layer(module: str) -> str:
    """The package a module belongs to: ``ltray.sweep.cli`` -> sweep; ``dashboard.app`` -> dashboard."""
    parts = module.split(".")
    return "dashboard" if parts[0] == "dashboard" else (parts[1] if len(parts) > 1 else "ltray")


def test_every_import_follows_the_layering():
    mods = _modules()
    bad = []
    for mod, path in mods.items():
        layer = _layer(mod)
        if layer in ("ltray", "errors"):
            continue
        allowed = SHIMS.get(layer, ALLOWED.get(layer))
        assert allowed is not None, f"{mod}: a module outside the layering table ({layer}); add its package to it"
        for name in _imports(path):
            if name.startswith(("ltray.", "dashboard")) and name in mods:
                target = _layer(name)
                if target not in allowed | {layer, "errors", "ltray"}:
                    bad.append(f"{mod} imports {name} ({layer} may import {', '.join(sorted(allowed)) or 'nothing'})")
            if name.split(".")[0] in FORBIDDEN.get(layer, ()):
                bad.append(f"{mod} imports {name}, which {layer} must not")
    assert not bad, "\n".join(bad)


def test_no_import_cycle_between_modules():
    """Strongly connected modules (a package's __init__ with its own submodules excepted)."""
    mods = _modules()
    graph = {m: {n for n in _imports(p) if n in mods and n != m} for m, p in mods.items()}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                on.discard(w)
                group.append(w)
            on.discard(v)
            group.append(v)
            inside = any(all(x == i or x.startswith(i + ".") for x in group) for i in group
                         if mods[i].name == "__init__.py")
            if len(group) > 1 and not inside:
                cycles.append(" <-> ".join(sorted(group)))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def _imported(modules: str) -> list[str]:
    code = (f"import sys, {modules}; print(sorted(m for m in ('ray', 'optuna', 'dash', 'mlflow', 'wandb') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return eval(r.stdout.strip())


def test_the_pure_layers_import_no_ray_optuna_or_dash():
    assert _imported("ltray.core.losses, ltray.core.posthoc, ltray.core.metrics, ltray.core.stats, ltray.methods, "
                     "ltray.datasets, ltray.config, ltray.train, ltray.results.rows, ltray.report") == []


def test_the_command_line_checks_an_experiment_without_ray_or_trackers():
    """``prepare`` validates before Ray starts: the CLI and the logger builders (Ray, mlflow and
    wandb only inside their functions) import none of them, nor do the Ray-free sweep modules."""
    assert _imported("ltray.sweep.cli, ltray.sweep.loggers, ltray.sweep.trial, ltray.sweep.outcomes") == []
