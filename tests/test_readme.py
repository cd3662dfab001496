"""Every example in the README runs: the quick start, each console command and each Python block.

These use the real pretrained models and the real bundled data (that is the point of the examples); the feature
cache is shared within the session, so BBC News is embedded once.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def console_commands() -> list[list[str]]:
    return [
        shlex.split(line[2:]) for block in blocks("console") for line in block.splitlines() if line.startswith("$ ")
    ]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme")


def test_setup_commands_are_the_two_documented_ones() -> None:
    install, tests = blocks("bash")[:2]
    assert install.strip() == "pip install . && headstart quickstart"
    assert tests.strip() == "pip install '.[test]' && pytest"
    assert "pip install '.[test]' && " in (README.parent / ".ci" / "run").read_text()


def test_quickstart_runs(workdir, monkeypatch) -> None:
    from tests.core.test_cli import run

    monkeypatch.chdir(workdir)
    code, output = run("quickstart", "--format", "json")
    assert code == 0, output
    import json

    result = json.loads(output)
    budgets = {row["labels_per_class"]: row for row in result["budgets"]}
    assert set(budgets) == {"4", "16", "all"}
    assert budgets["all"]["pretrained_accuracy"] > 0.9 and budgets["all"]["baseline_accuracy"] > 0.9
    assert budgets["4"]["n_train"] == 20
    for name in ("quickstart.json", "quickstart.md", "budgets.png", "model/headstart.json"):
        assert (workdir / "runs" / "quickstart" / name).is_file(), name
    assert len(result["examples"]) == 5


@pytest.mark.parametrize("command", console_commands(), ids=lambda c: " ".join(c[:2]))
def test_console_example(command: list[str], workdir, monkeypatch) -> None:
    from tests.core.test_cli import run

    assert command[0] == "headstart"
    if ("samples:spoken-digits" in command or "audio" in command) and shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng); the spoken-digits examples need it")
    monkeypatch.chdir(workdir)
    if command[1] in ("predict", "evaluate") and not (workdir / "runs" / "bbc").exists():
        assert run("fit", "samples:bbc-news", "--labels-per-class", "16", "--out", "runs/bbc")[0] == 0
    code, output = run(*command[1:])
    assert code == 0, output


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_example(index: int, workdir, monkeypatch) -> None:
    monkeypatch.chdir(workdir)
    exec(compile(blocks("python")[index], f"README.md python block {index}", "exec"), {})
