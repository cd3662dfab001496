"""The command line as a user meets it: commands, --format json, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from headstart.cli import app
from tests.conftest import make_texts

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    """Invoke like `main()` does: user errors, usage errors included, become one line and exit code 2."""
    from headstart.cli import is_usage_error, usage_message
    from headstart.errors import HeadstartError

    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=True, standalone_mode=False)
    exc = result.exception
    if isinstance(exc, HeadstartError):
        return 2, f"error: {exc}"
    if exc is not None and is_usage_error(exc):
        return getattr(exc, "exit_code", 2), f"error: {usage_message(exc)}"
    if exc is not None and not isinstance(exc, SystemExit):
        raise exc
    return result.exit_code, result.stdout


def run_with_stderr(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Digits 0-2, 8 of each, as PNG files in class0/, class1/, class2/ (the shared digit_images)."""
    from PIL import Image

    from tests.conftest import digit_images

    root = tmp_path_factory.mktemp("imgs") / "digits"
    images, labels = digit_images(8)
    for i, (image, label) in enumerate(zip(images, labels)):
        if int(label) < 3:
            (root / f"class{label}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / f"class{label}" / f"{i % 8}.png")
    return root


@pytest.fixture(scope="module")
def fitted(image_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "model"
    code, output = run("fit", image_folder, "--backbone", "headstart:tiny-cnn", "--out", out, "--format", "json")
    assert code == 0, output
    report = json.loads(output)
    assert report["tasks"]["label"]["n"] == report["n_test"]
    return out


def test_fit_predict_evaluate_embed(fitted, image_folder, tmp_path) -> None:
    code, output = run("predict", fitted, image_folder / "class1" / "0.png", "--format", "json")
    assert code == 0, output
    rows = json.loads(output)
    assert rows[0]["label"] in ("class0", "class1", "class2") and rows[0]["input"].endswith("0.png")
    code, output = run("predict", fitted, image_folder / "class2" / "1.png")
    assert code == 0 and "probability" in output
    code, output = run("evaluate", fitted, image_folder, "--out", tmp_path / "ev")
    assert code == 0 and "per class" in output and (tmp_path / "ev" / "confusion.png").is_file()
    code, output = run("embed", image_folder, "--backbone", "headstart:tiny-cnn", "--out", tmp_path / "x.npy")
    assert code == 0 and np.load(tmp_path / "x.npy").shape == (24, 64)


def test_backbones_lists_sources() -> None:
    code, output = run("backbones", "--format", "json")
    specs = {r["spec"] for r in json.loads(output)}
    assert code == 0 and {"headstart:efficientnet-lite0", "st:all-MiniLM-L6-v2", "local:PATH"} <= specs


def test_bad_images_are_skipped_and_reported(image_folder, tmp_path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    (data / "class0" / "empty.png").write_bytes(b"")
    (data / "class1" / "notes.png").write_text("this is not an image")
    good = (data / "class2" / "0.png").read_bytes()
    (data / "class2" / "cut.png").write_bytes(good[: len(good) // 2])
    code, output = run("fit", data, "--backbone", "headstart:tiny-cnn", "--out", tmp_path / "m", "--format", "json")
    assert code == 0, output
    skipped = json.loads(output)["skipped"]
    assert len(skipped) == 3
    assert any("empty.png" in s and "empty file" in s for s in skipped)
    assert any("notes.png" in s for s in skipped) and any("cut.png" in s for s in skipped)
    assert "empty.png" in (tmp_path / "m" / "report.md").read_text()
    code, output = run("fit", data, "--backbone", "headstart:tiny-cnn", "--out", tmp_path / "m2", "--strict")
    assert code == 2 and "empty.png" in output and not (tmp_path / "m2").exists()


@pytest.mark.parametrize(
    "rows, extra, expected",
    [
        ({"text": ["fine", "ok"], "label": ["a", "a"]}, [], "only one class ('a')"),
        ({"text": ["x", "y"], "label": ["a", "b"]}, ["--label-column", "topic"], "no column 'topic'"),
        ({"body": ["x", "y"], "label": ["a", "b"]}, ["--text-column", "content"], "no column 'content'"),
    ],
)
def test_bad_tables_fail_with_one_line(tmp_path, tiny_st_dir, rows, extra, expected) -> None:
    import pandas as pd

    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    code, output = run("fit", tmp_path / "t.csv", "--backbone", f"st:{tiny_st_dir}", "--out", tmp_path / "m", *extra)
    assert code == 2 and expected in output and "Traceback" not in output


def test_bad_text_rows_name_the_row(tmp_path, tiny_st_dir) -> None:
    texts, labels = make_texts(20)
    lines = ["text,label"] + [f"{t},{y}" for t, y in zip(texts, labels)]
    lines[3] = ",sport"  # empty text on data row 3
    lines[5] = lines[5].split(",")[0] + ","  # missing label on data row 5
    raw = ("\n".join(lines) + "\n").encode() + b"caf\xe9 ruined,business\n"  # undecodable row 21
    (tmp_path / "t.csv").write_bytes(raw)
    code, output = run(
        "fit", tmp_path / "t.csv", "--backbone", f"st:{tiny_st_dir}", "--out", tmp_path / "m", "--format", "json"
    )
    assert code == 0, output
    skipped = json.loads(output)["skipped"]
    assert any("row 3" in s and "missing text" in s for s in skipped)
    assert any("row 5" in s and "missing label" in s for s in skipped)
    assert any("row 21" in s and "UTF-8" in s for s in skipped)


def test_missing_inputs_and_unknown_backbones(tmp_path, fitted) -> None:
    code, output = run("fit", tmp_path / "nope", "--out", tmp_path / "m")
    assert code == 2 and "no such file or directory" in output
    code, output = run("fit", "samples:digits", "--backbone", "timm:not_a_model", "--out", tmp_path / "m")
    assert code == 2 and "timm has no model named" in output
    code, output = run("predict", tmp_path / "nope", "x.png")
    assert code == 2 and "no such model folder" in output
    code, output = run("predict", fitted, tmp_path / "missing.png")
    assert code == 2 and "missing.png" in output


def test_main_prints_one_line_and_exits_2(tmp_path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "headstart.cli", "fit", str(tmp_path / "nope"), "--out", str(tmp_path / "m")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr


def test_a_baseline_clearly_ahead_of_the_model_is_pointed_out():
    from headstart.cli.fit import baseline_warnings

    def report(acc: float, base: float, n: int) -> dict:
        task = {"accuracy": acc, "n": n, "baseline": {"name": "raw pixels + logistic regression", "accuracy": base}}
        return {"tasks": {"label": task}}

    (line,) = baseline_warnings(report(0.882, 0.944, 450))  # the digits run at 64 px, 20 labels per class
    assert line.startswith("the baseline (raw pixels + logistic regression) is 6.2 points more accurate")
    assert "try --strategy auto, fit's default (it compares the baseline" in line and "--strategy finetune" in line
    auto = {**report(0.882, 0.944, 450), "strategy": "auto"}  # auto weighed the baseline already: not suggested again
    (line,) = baseline_warnings(auto)
    assert "--strategy auto" not in line and "another --strategy" in line
    assert baseline_warnings(report(0.90, 0.92, 450)) == []  # within noise on 450 items
    assert baseline_warnings(report(0.95, 0.93, 450)) == []
    assert baseline_warnings({"tasks": {"label": {"accuracy": 0.5, "n": 10}}}) == []  # no baseline fitted


def test_fit_compares_recipes_by_default_through_the_entry_point(image_folder, tmp_path) -> None:
    tiny = ("--backbone", "headstart:tiny-cnn")
    proc = _installed("fit", str(image_folder), *tiny, "--out", str(tmp_path / "auto"))
    assert proc.returncode == 0, proc.stderr
    assert "candidates, by cross-validation on 18 training items" in proc.stdout and "fit (auto)" in proc.stdout
    report = json.loads((tmp_path / "auto" / "report.json").read_text())
    assert report["strategy"] == "auto" and (tmp_path / "auto" / "leaderboard.png").is_file()
    baseline = next(r for r in report["leaderboard"] if r["name"].startswith("baseline:"))
    assert baseline["cv_accuracy"] is not None  # the simple recipe is a candidate of the default
    proc = _installed("fit", str(image_folder), *tiny, "--head", "linear", "--out", str(tmp_path / "probe"))
    assert proc.returncode == 0, proc.stderr
    assert "candidates" not in proc.stdout and "fit: " in proc.stdout
    report = json.loads((tmp_path / "probe" / "report.json").read_text())
    assert report["strategy"] == "probe" and report["backbone"] == "headstart:tiny-cnn"


def _installed(*args: str) -> subprocess.CompletedProcess:
    """The `headstart` entry point the package installs, as a user runs it."""
    import shutil

    exe = shutil.which("headstart") or str(Path(sys.executable).parent / "headstart")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "args, words",
    [
        ((["fit"]), "Missing argument"),
        ((["fit", "samples:digits", "--out", "x", "--bogus"]), "No such option: --bogus"),
        ((["fit", "samples:digits", "--out", "x", "--seed", "many"]), "Invalid value for '--seed'"),
        ((["nocommand"]), "No such command 'nocommand'"),
        ((["fit", "samples:digits", "-o", "x", "--strategy", "probe", "--epochs", "3"]), "--epochs only apply to fine"),
        ((["fit", "samples:digits", "-o", "x", "--epochs", "3"]), "--epochs reach --strategy auto (the default) only"),
        ((["fit", "samples:digits", "-o", "x", "--strategy", "auto", "--head", "mlp"]), "--head names one head"),
        ((["fit", "samples:digits", "--out", "x", "--test-size", "1.5"]), "is not in [0, 1)"),
        # options that do not apply: refused before anything loads
        ((["fit", "samples:digits", "-o", "x", "--head", "mlp", "--distributed-strategy", "ddp"]), "--distributed-st"),
        ((["fit", "samples:digits", "-o", "x", "--head", "mlp", "-b", "a", "-b", "b"]), "several --backbone need"),
        ((["fit", "samples:digits", "-o", "x", "--strategy", "probe", "--time-budget", "9"]), "--time-budget only"),
        ((["fit", "samples:digits", "--out", "x", "--test", "t", "--test-size", "0.3"]), "does not apply with --test"),
        ((["pretrain", "samples:digits", "-m", "gan", "-o", "x", "--budgets", "2"]), "--budgets only apply with"),
        ((["pretrain", "samples:digits", "-m", "gan", "-o", "x", "--strategy", "ddp"]), "No such option: --strategy"),
        ((["lr-find", "samples:digits", "--strategy", "probe"]), "--strategy probe trains no backbone"),
        ((["rank", "samples:digits", "-b", "x", "--label-column", "a", "--label-column", "b"]), "one --label-column"),
        ((["embed", "samples:digits", "-o", "x.npy", "--label-column", "a"]), "No such option: --label-column"),
        ((["diagnose", "samples:digits", "--permutations", "10"]), "--permutations only applies with --target"),
        (
            (["fit", "samples:digits", "-o", "x", "--strategy", "finetune", "--epochs", "2", "--set", "epochs=3"]),
            "--epochs given twice",
        ),
    ],
)
def test_usage_errors_are_one_line_and_exit_2_through_the_entry_point(args, words) -> None:
    """Whatever click Typer resolves to (Typer 0.29 vendors its own), a usage error is one line: click's message."""
    proc = _installed(*args)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: "), proc.stderr


def test_headstart_alone_shows_the_help() -> None:
    proc = _installed()
    assert "Commands" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_fit_with_a_separate_test_set_through_the_entry_point(tmp_path, digits_small) -> None:
    import json

    from PIL import Image

    images, labels = digits_small
    for part, rows in (("train", range(0, 120, 2)), ("test", range(1, 120, 2))):
        for i in rows:
            folder = tmp_path / part / labels[i]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(folder / f"{i}.png")
    proc = _installed(
        "fit", str(tmp_path / "train"), "--test", str(tmp_path / "test"), "-b", "headstart:tiny-cnn",
        "--out", str(tmp_path / "m"), "--format", "json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["tasks"]["label"]["n"] == 60 and report["n_train"] == 60
    assert report["accuracy_from"].startswith(f"the separate labelled set {tmp_path / 'test'}")


@pytest.fixture(scope="module")
def text_table(tmp_path_factory) -> Path:
    """A table whose text sits in a column no default name finds ("body"), with one empty row (data row 3)."""
    import pandas as pd

    texts, labels = make_texts(24)
    texts[2] = ""
    path = tmp_path_factory.mktemp("table") / "news.csv"
    pd.DataFrame({"id": range(24), "body": texts, "topic": labels}).to_csv(path, index=False)
    return path


def test_text_column_means_the_same_in_every_command(text_table, tiny_st_dir, tmp_path) -> None:
    spec = f"st:{tiny_st_dir}"
    columns = ["--text-column", "body", "--label-column", "topic"]
    code, output = run("fit", text_table, "-b", spec, "-o", tmp_path / "m", *columns, "--format", "json")
    assert code == 0, output
    assert any("row 3" in s for s in json.loads(output)["skipped"])
    code, output = run("predict", tmp_path / "m", text_table, "--text-column", "body", "--format", "json")
    assert code == 0, output
    assert len(json.loads(output)) == 23 and json.loads(output)[0]["topic"] in ("business", "sport")
    code, output = run("rank", text_table, "-b", spec, "--scores", "logme", *columns, "--format", "json")
    assert code == 0, output
    assert json.loads(output)["data"]["task"] == "topic" and any("row 3" in s for s in json.loads(output)["skipped"])
    code, output = run("diagnose", text_table, "-b", spec, *columns, "--format", "json")
    assert code == 0, output
    assert json.loads(output)["data"]["task"] == "topic" and json.loads(output)["out"] is None  # no --out: no report
    assert any("row 3" in s for s in json.loads(output)["skipped"])  # JSON lists skipped items, as rank's does
    code, output = run("embed", text_table, "-b", spec, "-o", tmp_path / "x.npy", "--text-column", "nope")
    assert code == 2 and "no column 'nope'" in output
    code, output = run("predict", tmp_path / "m", "some text", "--text-column", "body")
    assert code == 2 and "--text-column applies to a table given as the one input" in output


@pytest.fixture(scope="module")
def bad_folder(image_folder, tmp_path_factory) -> Path:
    """The digit folder with three files that are no images."""
    import shutil

    data = tmp_path_factory.mktemp("bad") / "data"
    shutil.copytree(image_folder, data)
    (data / "class0" / "empty.png").write_bytes(b"")
    (data / "class1" / "notes.png").write_text("this is not an image")
    good = (data / "class2" / "0.png").read_bytes()
    (data / "class2" / "cut.png").write_bytes(good[: len(good) // 2])
    return data


@pytest.mark.parametrize(
    "command",
    [
        ["embed", "{data}", "-b", "headstart:tiny-cnn", "-o", "{tmp}/x.npy"],
        ["predict", "{model}", "{data}"],
        ["evaluate", "{model}", "{data}"],
        ["rank", "{data}", "-b", "headstart:tiny-cnn", "--scores", "logme"],
        ["diagnose", "{data}", "-b", "headstart:tiny-cnn"],
        ["pretrain", "{data}", "-m", "autoencoder", "-o", "{tmp}/ae", "--epochs", "1"],
    ],
    ids=lambda c: c[0],
)
def test_every_command_lists_skipped_items_the_same_way(command, bad_folder, fitted, tmp_path) -> None:
    args = [a.format(data=bad_folder, model=fitted, tmp=tmp_path) for a in command]
    code, stdout, stderr = run_with_stderr(*args)
    assert code == 0, stdout + stderr
    listed = stderr[stderr.index("skipped 3 bad item(s):") :].splitlines()[1:4]
    assert sorted(Path(line.split(":")[0].strip()).name for line in listed) == ["cut.png", "empty.png", "notes.png"]
    assert any("empty.png: empty file" in line for line in listed)


def test_embed_lists_skipped_items_through_the_entry_point(bad_folder, tmp_path) -> None:
    out = tmp_path / "x.npy"
    proc = _installed("embed", str(bad_folder), "-b", "headstart:tiny-cnn", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "skipped 3 bad item(s):" in proc.stderr and "empty.png: empty file" in proc.stderr.replace("\n", "")
    assert np.load(out).shape == (24, 64)
    proc = _installed("embed", str(bad_folder), "-b", "headstart:tiny-cnn", "-o", str(out), "--format", "json")
    payload = json.loads(proc.stdout)  # with --format json the payload lists them, and stdout holds nothing else
    assert len(payload["skipped"]) == 3 and any("notes.png" in s for s in payload["skipped"])
    proc = _installed("embed", str(bad_folder), "-b", "headstart:tiny-cnn", "-o", str(out), "--strict")
    assert proc.returncode == 2 and "empty.png" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_pretrain_passes_distributed_strategy_to_fabric(image_folder, tmp_path) -> None:
    """--distributed-strategy is Fabric's (the same option as fit's); Fabric refuses fsdp on a CPU, by name."""
    common = ["-m", "autoencoder", "--accelerator", "cpu"]
    code, output = run("pretrain", image_folder, *common, "-o", tmp_path / "a", "--distributed-strategy", "fsdp")
    assert code == 2 and "strategy=fsdp" in output and not (tmp_path / "a").exists()
    code, output = run("fit", image_folder, "-o", tmp_path / "b", "--strategy", "finetune", *common[2:],
                       "--distributed-strategy", "fsdp")  # fmt: skip
    assert code == 2 and "strategy=fsdp" in output and not (tmp_path / "b").exists()


def test_choices_come_from_the_registries() -> None:
    from headstart.cli import options as o
    from headstart.finetune.config import STRATEGIES
    from headstart.heads import HEADS
    from headstart.pretrain.registry import METHODS
    from headstart.select.scores import SCORES

    assert [h.value for h in o.HeadKind] == list(HEADS)
    from headstart.sequence import TASKS
    from headstart.sequence.strategies import STRATEGIES as SEQUENCE_STRATEGIES

    assert {s.value for s in o.Strategy} == {"probe", "auto", "setfit", *STRATEGIES, *SEQUENCE_STRATEGIES}
    assert [t.value for t in o.Task] == ["classify", *TASKS]
    assert [m.value for m in o.Method] == list(METHODS) and [s.value for s in o.ScoreName] == list(SCORES)


def test_no_command_module_outside_the_cli() -> None:
    """Commands are registered in headstart.cli, not by importing other packages for their side effects."""
    package = Path(__file__).resolve().parents[2] / "headstart"
    assert not [p for p in package.rglob("commands.py")]
    from headstart.cli import COMMANDS, app

    assert sorted(c.name for c in app.registered_commands) == sorted(COMMANDS)
