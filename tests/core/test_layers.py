"""The layers of DESIGN.md: imports point down. Nothing below the facade imports `headstart.api` or the CLI
(a package's `commands.py` is its CLI extension, so it may), and `import headstart` loads no heavy library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "headstart"
TOP = {"headstart.api", "headstart.cli", "headstart.demo"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "headstart":
                names.update(f"headstart.{a.name}" for a in node.names)
    return names


def test_lower_layers_never_import_the_facade_or_the_cli():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts)
        if module in TOP or path.name == "commands.py" or module == "headstart.__init__":
            continue
        bad = sorted(_imports(path) & TOP)
        if bad:
            offenders.append(f"{module} imports {', '.join(bad)}")
    assert not offenders, offenders


def test_import_headstart_stays_light():
    heavy = "('torch', 'transformers', 'timm', 'sklearn')"
    code = f"import sys, headstart; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
