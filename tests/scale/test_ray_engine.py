"""`engine="ray"`: the same rows in the same order as one process, a worker killed mid-job, clear errors.

One local Ray (2 CPUs) serves the session; each pipeline starts its actors (they import torch), which is most of the
time these tests take.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import headstart.api as api
from headstart.features import extract_features
from headstart.features.engine import Engine
from headstart.features.parts import read_parts, write_parts
from headstart.features.ray_engine import EngineError, connect
from headstart.storage import open_storage
from tests.conftest import digit_images
from tests.scale.backbones import DiesOnce

TINY = "headstart:tiny-cnn"


def ids_of(npy: Path) -> list[str]:
    with open(api.ids_path(npy)) as f:
        return [row["id"] for row in csv.DictReader(f)]


def test_ray_gives_the_single_process_rows_in_order_with_the_cache_on_s3(
    ray_cluster, s3_prefix, digits_folder, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("HEADSTART_CACHE", s3_prefix)
    # one batch of 60: prepared in this process, no DataLoader worker forked from a process running Ray's threads
    here = api.embed(
        digits_folder, backbone=TINY, out=tmp_path / "here.npy", batch_size=64, cache=False, progress=False
    )
    on_ray = api.embed(
        digits_folder, backbone=TINY, out=tmp_path / "ray.npy", batch_size=8, engine="ray", workers=2, progress=False
    )
    assert ids_of(tmp_path / "ray.npy") == ids_of(tmp_path / "here.npy")  # same items, same order
    assert len(set(ids_of(tmp_path / "ray.npy"))) == 60
    np.testing.assert_allclose(on_ray, here, rtol=1e-5, atol=1e-6)
    assert np.abs(on_ray - here).max() > 0 or np.array_equal(on_ray, here)  # a real comparison of 60 x 64 values
    shards = open_storage(s3_prefix).list("features", "")
    (folder,) = shards
    assert len(open_storage(s3_prefix).list(folder, ".json")) == 1  # the Ray run filled the S3 cache: one shard
    again = api.embed(digits_folder, backbone=TINY, engine="ray", workers=2, progress=False)
    assert len(open_storage(s3_prefix).list(folder, ".json")) == 1  # a cache hit: no new shard, no Ray job
    np.testing.assert_array_equal(again, on_ray)


def test_texts_on_ray_are_prepared_by_the_actors_and_equal_one_process(ray_cluster, tiny_st_dir, monkeypatch) -> None:
    from headstart.backbones import create_backbone
    from headstart.features import ray_engine
    from tests.conftest import make_texts

    texts = make_texts(50)[0] + ["a much longer text " * 8]  # lengths differ: batches are formed longest first
    backbone = create_backbone(f"st:{tiny_st_dir}")
    here = extract_features(backbone, texts, cache=False, progress=False, num_workers=0)

    def no_decoding_task(*args, **kwargs):
        raise AssertionError("a decoding task ran for texts")

    # a decoding stage would ship this function to its tasks and fail the job; the actors import the module afresh
    monkeypatch.setattr(ray_engine, "_decode", no_decoding_task)
    on_ray = extract_features(backbone, texts, cache=False, progress=False, batch_size=8, engine=Engine("ray"))
    np.testing.assert_allclose(on_ray, here, rtol=1e-5, atol=1e-6)


def test_an_unreadable_item_on_ray_is_named_as_in_one_process(ray_cluster, tmp_path) -> None:
    from headstart.backbones import create_backbone
    from headstart.errors import DataError

    (tmp_path / "empty.png").write_bytes(b"")  # not an image
    items = [np.zeros((8, 8), np.uint8), str(tmp_path / "empty.png")]
    with pytest.raises(DataError, match=r"^item #1: cannot be read \(") as caught:
        extract_features(create_backbone(TINY), items, cache=False, progress=False, engine=Engine("ray"))
    assert "Traceback" not in str(caught.value)


def test_without_ray_installed_the_error_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails, as without the extra
    with pytest.raises(EngineError, match=r"pip install 'headstart\[ray\]'"):
        connect()


def test_an_unreachable_cluster_is_one_clear_error(digits_folder, tmp_path) -> None:
    # an empty cache: with every feature cached (an earlier test may have embedded these digits) nothing needs Ray
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:9", "HEADSTART_CACHE": str(tmp_path / "cache")}
    cmd = ["headstart", "embed", digits_folder, "-b", TINY, "--out", str(tmp_path / "x.npy"), "--engine", "ray"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2  # the CLI's exit status for every error a user can cause
    assert "cannot join the Ray cluster at RAY_ADDRESS=127.0.0.1:9: nothing answers there" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "x.npy").exists()


def test_the_engine_choices_are_the_engines() -> None:
    from headstart.cli import options as o
    from headstart.features.engine import ENGINES

    assert [e.value for e in o.EngineName] == list(ENGINES)


def test_workers_without_the_ray_engine_are_refused(digits_folder, tmp_path) -> None:
    cmd = ["headstart", "embed", digits_folder, "--out", str(tmp_path / "x.npy"), "--workers", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--workers apply to --engine ray" in done.stderr


@pytest.mark.slow
def test_a_worker_killed_mid_job_is_retried_and_no_row_is_lost_or_doubled(ray_cluster, tmp_path) -> None:
    images = digit_images(6)[0]  # 60 images
    ids = [f"digit-{i}" for i in range(len(images))]
    marker = tmp_path / "died"
    dying = DiesOnce(TINY, str(marker))
    ray = Engine("ray", workers=1)  # one actor: the job can only finish if Ray restarts it

    def features_for(rows: slice) -> np.ndarray:
        return extract_features(dying, images[rows], cache=False, progress=False, batch_size=8, engine=ray)

    write_parts(tmp_path / "out", ids, ids, dying.cache_key, features_for, rows_per_part=100)
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # an actor did die, in another process
    got_ids, got = read_parts(tmp_path / "out")
    assert got_ids == ids  # every id exactly once, in order
    here = extract_features(dying.inner, images, cache=False, progress=False, num_workers=0)
    np.testing.assert_allclose(got, here, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_cli_embed_on_ray_writes_parquet_parts_to_s3(s3_prefix, digits_folder, tmp_path) -> None:
    out = f"{s3_prefix}/digits"
    cmd = ["headstart", "embed", digits_folder, "-b", TINY, "--out", out, "--engine", "ray", "--workers", "2"]
    cmd += ["--rows-per-part", "30", "--format", "json"]  # two parts: two Ray jobs, each starting its actors
    env = {**os.environ, "HEADSTART_CACHE": str(tmp_path / "cache")}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["rows"] == 60 and len(report["written"]) == 2 and report["kept"] == []
    ids, vectors = read_parts(out)
    assert len(ids) == 60 == len(set(ids)) and vectors.shape == (60, 64)
    here = api.embed(digits_folder, backbone=TINY, batch_size=64, cache=False, progress=False)  # one batch: no fork
    np.testing.assert_allclose(vectors, here, rtol=1e-5, atol=1e-6)
    second = subprocess.run(cmd[:-2], capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0 and "0 parts written, 2 kept" in second.stdout


@pytest.mark.slow
def test_cli_predict_on_ray_gives_the_single_process_rows(digits_folder, tmp_path) -> None:
    env = {**os.environ, "HEADSTART_CACHE": str(tmp_path / "cache")}
    model = tmp_path / "model"
    fitted = subprocess.run(["headstart", "fit", digits_folder, "-b", TINY, "--out", str(model), "--no-baseline"],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert fitted.returncode == 0, fitted.stderr
    env["HEADSTART_CACHE"] = str(tmp_path / "empty-cache")  # nothing cached: the features must come from Ray
    predict = ["headstart", "predict", str(model), digits_folder, "--top-k", "3", "--format", "json"]
    on_ray = subprocess.run([*predict, "--engine", "ray", "--workers", "2"], capture_output=True, text=True, env=env,
                            timeout=300)  # fmt: skip
    assert on_ray.returncode == 0, on_ray.stderr
    here = subprocess.run(predict, capture_output=True, text=True, env={**env, "HEADSTART_CACHE": str(tmp_path / "c2")},
                          timeout=300)  # fmt: skip
    assert here.returncode == 0, here.stderr
    ray_rows, rows = json.loads(on_ray.stdout), json.loads(here.stdout)
    assert len(rows) == 60 and [r["input"] for r in ray_rows] == [r["input"] for r in rows]  # same items, same order
    for a, b in zip(ray_rows, rows, strict=True):
        task = next(k for k in b if k.endswith("_top")).removesuffix("_top")
        assert [t["label"] for t in a[f"{task}_top"]] == [t["label"] for t in b[f"{task}_top"]]
        assert a[f"{task}_probability"] == pytest.approx(b[f"{task}_probability"], abs=1e-5)
