"""The layers of DESIGN.md, declared here and checked on every import in the package, lazy ones included.

A module may import its own layer and the layers above it in `LAYERS`, never one below; and the import graph has no
cycle. To see the graph: `python -m tests.core.test_layers` prints every import that crosses a layer boundary.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "headstart"

# first the floor; each layer may import only from itself and the layers listed before it
LAYERS: list[tuple[str, ...]] = [
    ("errors", "paths", "bundle", "storage"),  # user errors; cache and atomic-write helpers; saved folders; fsspec URLs
    ("data",),  # sources -> Datasets, validation, splits, samples
    ("backbones",),  # registry + one adapter per source
    ("features",),  # extraction, the cache, augmented views
    ("heads",),  # linear and MLP heads (scikit-learn contract), tuned by cross-validation
    ("evaluation",),  # metrics, reports, plots, baselines
    ("training",),  # the one engine: Fabric set-up, checkpointer, epoch runner
    ("finetune",),  # strategies, regularisers, the fine-tuning step: a trained network + history
    ("pretrain",),  # one module per objective, on the engine
    ("sequence",),  # sequence tasks: paired data, Whisper / encoder-decoder models, seq2seq training, WER/chrF/ROUGE
    ("select",),  # transferability scores and data diagnostics
    ("model",),  # TransferModel: a fitted backbone + heads
    ("runs",),  # the front door of a run and its finish
    ("probe", "finetuning", "lr_find", "autofit", "sequencing"),  # recipes
    ("export", "runtime"),  # ONNX export, parity gate, quantisation; prediction with onnxruntime, no torch
    ("serve",),  # the HTTP service, micro-batching, metrics, the web page
    ("api",),  # the Python facade
    ("demo",),  # the quick start, on the facade
    ("cli",),  # the command line
]


def _layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "headstart" or len(parts) < 2:
        return None
    for i, names in enumerate(LAYERS):
        if parts[1] in names:
            return i
    raise AssertionError(f"{module} is in no layer of LAYERS: add it to the declared order")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Every headstart module `module` imports, at any depth (lazy imports inside functions count too)."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.add(full if full in known else base)
    return {n for n in names if n in known and n != module}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {m: _imports(m, p, known) for m, p in modules.items()}


def test_every_import_points_up_the_declared_layers():
    offenders = []
    for module, targets in import_graph().items():
        if module == "headstart":  # the lazy facade names api functions as strings, imports nothing at load
            continue
        mine = _layer_of(module)
        for target in sorted(targets):
            theirs = _layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                offenders.append(f"{module} imports {target} (layer {LAYERS[theirs]} is below {LAYERS[mine]})")
    assert not offenders, "\n".join(offenders)


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_layer_test_catches_an_upward_import(tmp_path, monkeypatch):
    """The check itself can fail: a data module importing the model is reported."""
    fake = tmp_path / "headstart"
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "model.py").write_text("")
    (fake / "data" / "__init__.py").write_text("")
    (fake / "data" / "bad.py").write_text("def f():\n    from headstart.model import TransferModel\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    try:
        test_every_import_points_up_the_declared_layers()
    except AssertionError as exc:
        assert "headstart.data.bad imports headstart.model" in str(exc)
    else:
        raise AssertionError("an upward import went unnoticed")


def test_import_headstart_stays_light():
    heavy = "('torch', 'transformers', 'timm', 'sklearn')"
    code = f"import sys, headstart; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_public_names_survive_importing_every_subpackage():
    """`hs.quickstart`, `hs.list_backbones`... stay functions after `import headstart.backbones` and the rest."""
    code = (
        "import importlib, pkgutil, headstart as hs\n"
        "for m in pkgutil.iter_modules(hs.__path__): importlib.import_module('headstart.' + m.name)\n"
        "bad = [n for n in hs.__all__ if n != '__version__' and not callable(getattr(hs, n))]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


if __name__ == "__main__":
    for mod, targets in sorted(import_graph().items()):
        for t in sorted(targets):
            if _layer_of(mod) != _layer_of(t):
                print(f"{mod} -> {t}")
