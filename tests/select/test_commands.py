"""`headstart rank` and `headstart diagnose` as a user runs them, with --format json and with tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from headstart.cli import app
from tests.select.helpers import digits

runner = CliRunner()
TINY = "headstart:tiny-cnn?size=16"


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_rank_json_with_backbones_given_three_ways(tmp_path) -> None:
    out = tmp_path / "rank"
    specs = [TINY, "headstart:tiny-cnn?seed=1&size=16", "headstart:tiny-cnn?seed=2&size=16"]  # as specs print
    given = ["--backbones", specs[0], specs[1], "-b", specs[2]]  # `-b A B` and `-b A -b B`
    options = ["--labels-per-class", "5", "--seed", "3", "--format", "json", "--out", out]
    report = json.loads(invoke("rank", "samples:digits", *given, *options).stdout)
    assert sorted(b["spec"] for b in report["backbones"]) == sorted(specs)
    assert report["recommended"] in specs and report["data"]["n_scored"] == 50
    for b in report["backbones"]:
        assert b["scores"]["logme"] is not None and b["scores"]["linear_probe"] is not None
        assert b["scores"]["leep"] is None  # no source classifier
    assert (out / "rank.json").is_file() and (out / "rank.md").is_file()
    options = ["--labels-per-class", "3", "--scores", "logme,knn", "--score", "knn", "--format", "json"]
    comma = json.loads(invoke("rank", "samples:digits", "-b", ",".join(specs[:2]), *options).stdout)  # `-b A,B`
    assert sorted(b["spec"] for b in comma["backbones"]) == sorted(specs[:2]) and comma["score"] == "knn"
    assert set(comma["backbones"][0]["scores"]) == {"logme", "knn"}


def test_rank_table(tmp_path) -> None:
    result = invoke(
        "rank", "samples:digits", "-b", TINY, "--labels-per-class", "4", "--scores", "logme,hscore_shrinkage"
    )
    assert "recommended: headstart:tiny-cnn?size=16" in result.stdout
    assert "compares across embedding sizes" in result.stdout


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    """A labelled image folder with one copied image, and an unlabelled folder of the same digits rotated."""
    from PIL import Image

    root = tmp_path_factory.mktemp("diag")
    images, labels = digits(8)
    for i, (image, label) in enumerate(zip(images, labels)):
        (root / "data" / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / "data" / label / f"{i}.png")
        if i % 2 == 0:
            (root / "target").mkdir(exist_ok=True)
            Image.fromarray(np.rot90(image).copy()).save(root / "target" / f"{i}.png")
    Image.fromarray(images[0]).save(root / "data" / labels[0] / "copy-of-0.png")
    return root / "data", root / "target"


def test_diagnose_json_and_table(folders, tmp_path) -> None:
    data, target = folders
    out = tmp_path / "diag"
    args = ["diagnose", data, "--target", target, "--backbone", TINY, "--out", out, "--permutations", "100"]
    report = json.loads(invoke(*args, "--format", "json").stdout)
    assert len(report["exact_duplicates"]) == 1
    (group,) = report["exact_duplicates"]
    assert sorted(Path(w).name for w in group["where"]) == ["0.png", "copy-of-0.png"]
    assert report["shift"]["level"] in ("clear", "strong")
    assert {p.name for p in out.iterdir()} >= {"report.json", "report.md", "embedding-map.png"}
    table = invoke(*args).stdout
    for check in ("class balance", "exact duplicates", "suspect labels", "domain shift"):
        assert check in table
    assert "domain shift" in table.lower()
