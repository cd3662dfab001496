"""The command line: `headstart fit --strategy ...` and `headstart lr-find`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from headstart.cli import app
from tests.finetune.ft_helpers import TINY_CNN


def test_fit_with_a_strategy_and_lr_find(digits_folder, tmp_path):
    runner = CliRunner()
    fit = runner.invoke(
        app,
        ["fit", digits_folder, "-o", str(tmp_path / "m"), "-b", TINY_CNN, "--strategy", "gradual", "--epochs", "1",
         "--augment", "none", "--l2sp", "0.01", "--set", "num_workers=0", "--no-baseline", "--format", "json"],
    )  # fmt: skip
    assert fit.exit_code == 0, fit.output
    report = json.loads(fit.output)
    assert report["strategy"] == "gradual" and report["finetune"]["config"]["regularisation"]["l2sp"] == 0.01

    found = runner.invoke(
        app,
        ["lr-find", digits_folder, "-b", TINY_CNN, "-o", str(tmp_path / "lr.png"), "--num-it", "8",
         "--batch-size", "16", "--set", "num_workers=0", "--format", "json"],
    )  # fmt: skip
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)["suggestion"] > 0 and (tmp_path / "lr.png").is_file()


def test_unknown_setting_is_one_clear_error(digits_folder, tmp_path):
    from headstart.errors import HeadstartError

    result = CliRunner().invoke(
        app,
        ["fit", digits_folder, "-o", str(tmp_path / "m"), "-b", TINY_CNN, "--strategy", "finetune",
         "--set", "warmpu=0.1"],
    )  # fmt: skip
    assert isinstance(result.exception, HeadstartError) and "warmpu" in str(result.exception)


def test_a_distributed_setting_fabric_refuses_is_one_clear_error(digits_folder, tmp_path):
    from headstart.errors import HeadstartError

    result = CliRunner().invoke(
        app,
        ["fit", digits_folder, "-o", str(tmp_path / "m"), "-b", TINY_CNN, "--strategy", "finetune",
         "--distributed-strategy", "fsdp", "--accelerator", "cpu"],
    )  # fmt: skip
    assert isinstance(result.exception, HeadstartError)
    assert "strategy=fsdp" in str(result.exception) and "only available on GPU" in str(result.exception)
    assert not (tmp_path / "m").exists()  # nothing half-written


def test_fit_says_how_long_it_trained_and_that_no_validation_chose_the_epoch(digits_folder, tmp_path):
    fit = CliRunner().invoke(
        app,
        ["fit", digits_folder, "-o", str(tmp_path / "m"), "-b", TINY_CNN, "--strategy", "finetune", "--epochs", "1",
         "--augment", "none", "--set", "num_workers=0", "--no-baseline"],
    )  # fmt: skip
    assert fit.exit_code == 0, fit.output
    # 45 training items: 15% would be 7 validation items, too few to tell epochs apart, so none were held out
    assert "trained for 1 epoch; no validation part (it would hold fewer than 100 items)" in fit.output
    from headstart.finetuning import kept_epoch_label

    history = json.loads((tmp_path / "m" / "report.json").read_text())["finetune"]["history"]
    assert kept_epoch_label(history, 1) == "kept: the last epoch (1), no validation"
    assert kept_epoch_label([{**history[0], "val_loss": 0.5}], 1) == "best epoch (1)"
