"""Every example in the README runs and does what it says: the quick start, each console command and each Python block,
each checked for what it produces (files written, report keys, predicted labels, accuracy above chance).

They use the real pretrained models and the real bundled data (that is the point of the examples), so they are in the
slow set (`pytest -m slow`); the feature cache is shared within the session, so BBC News is embedded once. An example
without a check fails `test_every_readme_example_has_a_check`, which is fast.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def console_commands() -> list[list[str]]:
    return [
        shlex.split(line[2:]) for block in blocks("console") for line in block.splitlines() if line.startswith("$ ")
    ]


def option(command: list[str], name: str) -> str | None:
    """The value after `name` in a command line, None when the option is not given."""
    return command[command.index(name) + 1] if name in command else None


def assert_above_chance(task: dict[str, Any]) -> None:
    """Accuracy clearly above always answering the commonest class: by three binomial standard errors of that rate
    on the items scored (for 10 balanced classes and 1,700 items: above 0.122). A model that learned nothing fails."""
    n = task["n"]
    chance = max(c["support"] for c in task["per_class"].values()) / n
    bar = chance + 3 * math.sqrt(chance * (1 - chance) / n)
    assert task["accuracy"] > bar, f"accuracy {task['accuracy']:.3f} on {n} items is not above chance ({bar:.3f})"


def read_report(folder: Path) -> dict[str, Any]:
    for name in ("report.json", "report.md"):
        assert (folder / name).is_file(), f"{folder} has no {name}"
    return json.loads((folder / "report.json").read_text())


def check_fit(command: list[str], output: str, workdir: Path) -> None:
    if option(command, "--task") in ("seq2seq", "transcribe"):
        return check_sequence_fit(command, output, workdir)
    out = workdir / option(command, "--out")
    for name in ("headstart.json", "heads.safetensors", "confusion.png"):
        assert (out / name).is_file(), f"fit --out {out} wrote no {name}"
    report = read_report(out)
    assert_above_chance(report["tasks"]["label"])
    assert f"saved model and report to {option(command, '--out')}" in " ".join(output.split())
    if option(command, "--labels-per-class"):
        assert str(report["labels_per_class"]) == option(command, "--labels-per-class")
    strategy, backbone = option(command, "--strategy"), option(command, "--backbone")
    if strategy is None:  # fit's default: auto, unless --head names the probe's recipe
        strategy = "probe" if option(command, "--head") else "auto"
    assert report["strategy"] == strategy
    manifest = json.loads((out / "headstart.json").read_text())
    if strategy == "finetune":  # the tuned backbone is saved beside the head
        assert manifest["backbone"]["weights"] and (out / manifest["backbone"]["weights"]).is_file()
    elif strategy == "auto":
        chosen = [row["name"] for row in report["leaderboard"] if row["chosen"]]
        assert chosen == [report["chosen"]] and len(report["leaderboard"]) >= 3
        assert any(row["name"].startswith("baseline:") and row["cv_accuracy"] for row in report["leaderboard"])
    elif backbone is not None and not backbone.startswith("local:"):
        assert report["backbone"] == backbone and manifest["backbone"]["weights"] is None
    if option(command, "--test-size") == "0":  # trained on every label; scored by cross-validation
        assert report["n_test"] == 0 and "cross-validation" in report["accuracy_from"]
        assert report["n_train"] == report["tasks"]["label"]["n"]


def check_sequence_fit(command: list[str], output: str, workdir: Path) -> None:
    """A sequence model's run folder: the bundle, the report with the counts the command asked for, the curves."""
    out = workdir / option(command, "--out")
    for name in ("headstart.json", "report.md", "metrics.csv", "curves.png"):
        assert (out / name).is_file(), f"fit --out {out} wrote no {name}"
    report = read_report(out)
    assert json.loads((out / "headstart.json").read_text())["kind"] == "sequence"
    assert report["task"] == option(command, "--task") and len(report["history"]) == int(option(command, "--epochs"))
    if option(command, "--max-train"):
        assert report["n_train"] + report["n_val"] == int(option(command, "--max-train"))
    if option(command, "--max-test"):
        assert report["n_test"] == int(option(command, "--max-test"))
    assert bool(report["baselines"]) == ("--no-baseline" not in command)
    assert report["history"][-1]["loss"] < report["history"][0]["loss"] or len(report["history"]) == 1
    assert f"saved model and report to {option(command, '--out')}" in " ".join(output.split())


def check_predict(command: list[str], output: str, workdir: Path) -> None:
    text = command[-1]
    assert text.startswith("Shares in the carmaker fell"), "a new predict example needs its expected label here"
    assert re.search(r"\bbusiness\b", output), output


def check_evaluate(command: list[str], output: str, workdir: Path) -> None:
    from headstart.data import load_data

    n = len(load_data(command[3]).items)
    if option(command, "--out"):
        report = read_report(workdir / option(command, "--out"))
        assert report["tasks"]["label"]["n"] == n
        assert_above_chance(report["tasks"]["label"])
    if option(command, "--noise-snr"):  # robustness to noise: the accuracy at that SNR, on every clip
        flat = " ".join(output.split())
        assert f"+noise {float(option(command, '--noise-snr')):g} dB" in flat, output
        row = re.search(r"label\W+([01]\.\d{4})\W+([01]\.\d{4})\W+(\d+)", flat)
        assert row and int(row.group(3)) == n, output


def check_embed(command: list[str], output: str, workdir: Path) -> None:
    from headstart.data import load_data

    n = len(load_data(command[2]).items)
    if not option(command, "--out").endswith(".npy"):  # Parquet parts (with --engine ray in the README)
        return check_embed_parts(command, output, workdir, n)
    x = np.load(workdir / option(command, "--out"))
    assert x.shape == (n, 1280) and x.dtype == np.float32 and np.isfinite(x).all()  # EfficientNet-Lite0: 1280-d
    ids = (workdir / option(command, "--out")).with_suffix(".ids.csv").read_text().splitlines()
    assert len(ids) == n + 1  # a header, then one row per feature row


def check_embed_parts(command: list[str], output: str, workdir: Path, n: int) -> None:
    from headstart.features.parts import read_parts

    ids, x = read_parts(workdir / option(command, "--out"))
    assert x.shape == (n, 1280) and len(set(ids)) == n and np.isfinite(x).all()  # every item once
    assert "1 parts written, 0 kept" in " ".join(output.split())
    npy = workdir / "digits.npy"  # the README's first embed command, on one process
    if npy.is_file():
        np.testing.assert_allclose(x, np.load(npy), rtol=1e-5, atol=1e-5)


def check_backbones(command: list[str], output: str, workdir: Path) -> None:
    for spec in ("headstart:efficientnet-lite0", "st:all-MiniLM-L6-v2", "headstart:speech-embedding"):
        assert spec in output, spec


def check_lr_find(command: list[str], output: str, workdir: Path) -> None:
    assert (workdir / option(command, "--out")).read_bytes()[:4] == b"\x89PNG"


def check_pretrain(command: list[str], output: str, workdir: Path) -> None:
    out = workdir / option(command, "--out")
    manifest = json.loads((out / "headstart.json").read_text())
    assert manifest["backbone"]["weights"] and (out / manifest["backbone"]["weights"]).is_file()
    assert len(manifest["pretrain"]["history"]) == int(option(command, "--epochs"))
    assert "use it as --backbone local:" in " ".join(output.split())


def check_quickstart(command: list[str], output: str, workdir: Path) -> None:
    out = workdir / option(command, "--out")
    for name in ("quickstart.json", "quickstart.md", "budgets.png", "model/headstart.json"):
        assert (out / name).is_file(), name
    result = json.loads((out / "quickstart.json").read_text())
    budgets = {row["labels_per_class"]: row for row in result["budgets"]}
    assert set(budgets) == set(option(command, "--budgets").split(","))
    assert budgets["all"]["pretrained_accuracy"] > 0.5  # spoken digits, 10 classes, held-out voices: about 0.98


def check_rank(command: list[str], output: str, workdir: Path) -> None:
    candidates = command[command.index("--backbones") + 1 :]
    recommended = re.search(r"recommended: (\S+)", output)
    assert recommended and recommended.group(1) in candidates, output


def check_diagnose(command: list[str], output: str, workdir: Path) -> None:
    out = workdir / option(command, "--out")
    report = read_report(out)
    assert report and (out / "embedding-map.png").read_bytes()[:4] == b"\x89PNG"


def check_serve(command: list[str], output: str, workdir: Path) -> None:
    """`headstart serve` runs until stopped: started as a user would (on a free port rather than the README's), it
    must get ready, answer the README's infer request with the right label, and exit cleanly on SIGTERM."""
    import signal
    import subprocess
    import sys

    import httpx

    from tests.serve.conftest import free_port, wait_ready

    args, port = list(command[1:]), free_port()
    args[args.index("--port") + 1] = str(port)
    proc = subprocess.Popen([sys.executable, "-m", "headstart.cli", *args], cwd=workdir, stderr=subprocess.PIPE)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            wait_ready(client.get, timeout=300)
            request = next(b for b in blocks("json") if '"inputs"' in b)
            r = client.post(f"/v2/models/{Path(command[2]).name}/infer", json=json.loads(request))
            assert r.status_code == 200, r.text
            outputs = {o["name"]: o for o in r.json()["outputs"]}
            assert outputs["label"]["data"] == ["business"]
            assert outputs["label_probabilities"]["shape"] == [1, 5]
            assert "<html" in client.get("/").text and "headstart_requests_total" in client.get("/metrics").text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()


CONSOLE_CHECKS: dict[str, Callable[[list[str], str, Path], None]] = {
    "fit": check_fit,
    "predict": check_predict,
    "evaluate": check_evaluate,
    "embed": check_embed,
    "backbones": check_backbones,
    "lr-find": check_lr_find,
    "pretrain": check_pretrain,
    "quickstart": check_quickstart,
    "rank": check_rank,
    "diagnose": check_diagnose,
    "serve": check_serve,
}
RUNS_UNTIL_STOPPED = {"serve"}  # their check starts them, uses them and stops them


def check_api_block(namespace: dict[str, Any], printed: str, workdir: Path) -> None:
    model, probe, same, features = (namespace[k] for k in ("model", "probe", "same", "features"))
    task = model.report["tasks"]["label"]
    assert_above_chance(task)
    assert task["baseline"]["n"] == task["n"]  # the baseline is scored on the same items
    assert model.predict(["The striker scored twice in the second half"])[0].startswith("sport")
    assert (workdir / "runs" / "bbc-api" / "headstart.json").is_file()
    chosen = [row["name"] for row in model.report["leaderboard"] if row["chosen"]]  # fit's default: auto
    assert chosen == [model.report["chosen"]] and model.report["strategy"] == "auto"
    assert probe.report["strategy"] == "probe" and probe.backbone_spec == "st:all-MiniLM-L6-v2"
    assert (workdir / "runs" / "bbc-probe-api" / "headstart.json").is_file()
    texts = ["Shares fell sharply", "The match ended in a draw"]
    np.testing.assert_allclose(same.predict_proba(texts), model.predict_proba(texts), atol=1e-5)  # saved = fitted
    assert features.shape == (2, 384) and features.dtype == np.float32 and not np.allclose(features[0], features[1])
    assert "(2, 384)" in printed


def check_pipeline_block(namespace: dict[str, Any], printed: str, workdir: Path) -> None:
    from sklearn.base import clone

    pipe, x = namespace["pipe"], namespace["x"]
    proba = pipe.predict_proba(x[:2])
    assert proba.shape == (2, 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert list(pipe.classes_) == ["a", "b", "c"] and pipe[-1].C == 0.5 and pipe[-1].n_features_in_ == 8
    assert clone(pipe).get_params()["linearhead__C"] == 0.5  # a scikit-learn estimator like any other
    assert printed.count("[") >= 3  # the rounded probabilities were printed


def check_export(command: list[str], output: str, workdir: Path) -> None:
    out = workdir / option(command, "--out")
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["parity"]["passed"] and manifest["parity"]["batch_sizes"] == [1, 3, 17]
    assert {"model.onnx", "tokenizer.json"} <= set(manifest["files"]) and (out / "model.onnx").is_file()
    assert "parity, ONNX Runtime vs PyTorch" in " ".join(output.split())


def check_export_block(namespace: dict[str, Any], printed: str, workdir: Path) -> None:
    exported = namespace["exported"]
    labels = exported.predict(["Shares fell sharply", "The match ended in a draw"])
    assert labels[0] == "business" and labels[1].startswith("sport")  # BBC News names the class "sports"
    assert exported.modality == "text" and exported.card()["parity"]["passed"]
    assert (workdir / "exports" / "bbc-api" / "export.json").is_file() and "(1, 384)" in printed


CONSOLE_CHECKS["export"] = check_export


def check_headlines_block(namespace: dict[str, Any], printed: str, workdir: Path) -> None:
    model, scores = namespace["model"], namespace["scores"]
    (headline,) = model.predict([namespace["article"]], num_beams=4, max_length=16)
    assert model.task == "seq2seq" and headline.strip() and headline in printed
    assert scores["n_test"] == 1 and set(scores["metrics"]) == {"chrf", "bleu", "rouge1", "rouge2", "rougeL"}
    assert list(scores["baselines"]) == [f"lead {model.settings['lead_words']} words"]


PYTHON_CHECKS: dict[str, Callable[[dict[str, Any], str, Path], None]] = {
    'hs.load("runs/headlines")': check_headlines_block,
    'out="runs/bbc-api"': check_api_block,
    "make_pipeline(": check_pipeline_block,
    "load_export(": check_export_block,
}


def python_check(block: str) -> Callable[[dict[str, Any], str, Path], None]:
    matches = [check for marker, check in PYTHON_CHECKS.items() if marker in block]
    assert len(matches) == 1, f"README python block has {len(matches)} checks, needs exactly one:\n{block}"
    return matches[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme")


def test_setup_commands_are_the_two_documented_ones() -> None:
    install, tests = blocks("bash")[:2]
    assert install.strip() == "pip install . && headstart quickstart"
    assert tests.strip() == "pip install '.[test]' && pytest"
    assert "pip install '.[test]' && " in (README.parent / ".ci" / "run").read_text()


def test_every_readme_example_has_a_check() -> None:
    commands = console_commands()
    assert commands and all(c[0] == "headstart" for c in commands)
    assert {c[1] for c in commands} <= set(CONSOLE_CHECKS), "a README command without a check in CONSOLE_CHECKS"
    assert blocks("python")
    for block in blocks("python"):
        python_check(block)


@pytest.mark.slow
def test_quickstart_runs(workdir, monkeypatch) -> None:
    from tests.core.test_cli import run

    monkeypatch.chdir(workdir)
    code, output = run("quickstart", "--format", "json")
    assert code == 0, output
    result = json.loads(output)
    budgets = {row["labels_per_class"]: row for row in result["budgets"]}
    assert set(budgets) == {"4", "16", "all"}
    assert budgets["all"]["pretrained_accuracy"] > 0.9 and budgets["all"]["baseline_accuracy"] > 0.9
    assert budgets["4"]["n_train"] == 20
    for name in ("quickstart.json", "quickstart.md", "budgets.png", "model/headstart.json"):
        assert (workdir / "runs" / "quickstart" / name).is_file(), name
    assert len(result["examples"]) == 5


@pytest.mark.slow
@pytest.mark.parametrize("command", console_commands(), ids=lambda c: " ".join(c[:2]))
def test_console_example(command: list[str], workdir, monkeypatch) -> None:
    from tests.core.test_cli import run

    if ("samples:spoken-digits" in command or "audio" in command) and shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng); the spoken-digits examples need it")
    monkeypatch.chdir(workdir)
    if command[1] in ("predict", "evaluate", "serve") and not (workdir / "runs" / "bbc").exists():
        assert run("fit", "samples:bbc-news", "--labels-per-class", "16", "--out", "runs/bbc")[0] == 0
    if command[1] in RUNS_UNTIL_STOPPED:
        return CONSOLE_CHECKS[command[1]](command, "", workdir)
    code, output = run(*command[1:])
    assert code == 0, output
    CONSOLE_CHECKS[command[1]](command, output, workdir)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_example(index: int, workdir, monkeypatch, capsys) -> None:
    monkeypatch.chdir(workdir)
    block = blocks("python")[index]
    check = python_check(block)
    if "runs/headlines" in block and not (workdir / "runs" / "headlines").exists():  # saved by a README command
        from tests.core.test_cli import run

        (command,) = [c for c in console_commands() if "runs/headlines" in c]
        assert run(*command[1:])[0] == 0
    namespace: dict[str, Any] = {}
    exec(compile(block, f"README.md python block {index}", "exec"), namespace)
    check(namespace, capsys.readouterr().out, workdir)
