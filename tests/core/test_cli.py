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
    """Invoke like `main()` does: user errors become one line and exit code 2."""
    import click

    from headstart.errors import HeadstartError

    try:
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=True, standalone_mode=False)
    except click.exceptions.ClickException as exc:
        return exc.exit_code, exc.format_message()
    exc = result.exception
    if isinstance(exc, HeadstartError):
        return 2, f"error: {exc}"
    if isinstance(exc, click.exceptions.ClickException):
        return exc.exit_code, exc.format_message()
    if exc is not None and not isinstance(exc, SystemExit):
        raise exc
    return result.exit_code, result.stdout


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("imgs") / "digits"
    d = load_digits()
    for k in range(3):
        (root / f"class{k}").mkdir(parents=True)
        for j, i in enumerate(np.flatnonzero(d.target == k)[:8]):
            Image.fromarray((d.images[i] * 15).astype(np.uint8)).save(root / f"class{k}" / f"{j}.png")
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
    from headstart.cli import baseline_warnings

    def report(acc: float, base: float, n: int) -> dict:
        task = {"accuracy": acc, "n": n, "baseline": {"name": "raw pixels + logistic regression", "accuracy": base}}
        return {"tasks": {"label": task}}

    (line,) = baseline_warnings(report(0.882, 0.944, 450))  # the digits run at 64 px, 20 labels per class
    assert line.startswith("the baseline (raw pixels + logistic regression) is 6.2 points more accurate")
    assert baseline_warnings(report(0.90, 0.92, 450)) == []  # within noise on 450 items
    assert baseline_warnings(report(0.95, 0.93, 450)) == []
    assert baseline_warnings({"tasks": {"label": {"accuracy": 0.5, "n": 10}}}) == []  # no baseline fitted


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
        ((["fit", "samples:digits", "--out", "x", "--epochs", "3"]), "--epochs only apply to fine-tuning"),
        ((["fit", "samples:digits", "--out", "x", "--test-size", "1.5"]), "is not in [0, 1)"),
    ],
)
def test_usage_errors_are_one_message_and_exit_2_through_the_entry_point(args, words) -> None:
    """Whatever click Typer resolves to (Typer 0.29 vendors its own), a usage error is click's short message."""
    proc = _installed(*args)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr


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
