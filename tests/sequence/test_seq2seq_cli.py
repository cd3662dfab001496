"""Text to text through the installed `headstart` command, as a user runs it: a tiny Marian-style model built
locally is fine-tuned on a toy translation table, scored beside its baselines, then evaluated and used to predict."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.sequence.conftest import toy_pairs


def headstart(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(["headstart", *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def fitted(tiny_marian_dir: Path, toy_table: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("seq2seq-run") / "model"
    args = ["fit", str(toy_table), "--task", "seq2seq", "-b", f"hf:{tiny_marian_dir}", "--out", str(out)]
    done = headstart(*args, "--epochs", "20", "--lr", "1e-2", "--batch-size", "16", "--format", "json")
    assert done.returncode == 0, done.stderr
    return out, json.loads(done.stdout)


def test_fit_beats_the_untrained_model_and_writes_the_run_folder(fitted: tuple[Path, dict]) -> None:
    out, report = fitted
    untrained = report["baselines"]["pretrained, not fine-tuned"]
    assert report["metrics"]["chrf"] > untrained["chrf"] + 10
    assert set(report["baselines"]) == {"pretrained, not fine-tuned", "lead 3 words", "same architecture, random init"}
    assert report["n_train"] + report["n_val"] + report["n_test"] == 240
    assert report["skipped"] == ["pairs.csv row 241: missing target in column 'target'"]
    assert len(report["history"]) == 20 and report["best_epoch"] is not None
    for name in ("headstart.json", "model/model.safetensors", "tokenizer/tokenizer.json", "report.md", "curves.png",
                 "metrics.csv", "checkpoint/checkpoint.json", "baseline-random-init/metrics.csv"):  # fmt: skip
        assert (out / name).is_file(), name
    assert "| lead 3 words |" in (out / "report.md").read_text()


def test_evaluate_and_predict_a_saved_model(fitted: tuple[Path, dict], tmp_path: Path) -> None:
    out, report = fitted
    fresh = tmp_path / "fresh.jsonl"
    fresh.write_text("".join(json.dumps({"src": s, "tgt": t}) + "\n" for s, t in toy_pairs(40, seed=7)))
    args = ["--source-column", "src", "--target-column", "tgt", "--format", "json"]
    done = headstart("evaluate", str(out), str(fresh), *args)
    assert done.returncode == 0, done.stderr
    scored = json.loads(done.stdout)
    assert scored["n_test"] == 40 and scored["metrics"]["chrf"] > scored["baselines"]["lead 3 words"]["chrf"]
    untrained = scored["baselines"]["pretrained, not fine-tuned"]  # the hf: model it came from, on the same pairs
    assert scored["metrics"]["chrf"] > untrained["chrf"] + 10
    done = headstart("predict", str(out), "one two", "three", "--num-beams", "2", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["input"] for r in rows] == ["one two", "three"] and all(isinstance(r["output"], str) for r in rows)
    done = headstart("predict", str(out), "one", "--top-k", "2")
    assert done.returncode == 2 and "--top-k do not apply to a sequence model" in done.stderr
