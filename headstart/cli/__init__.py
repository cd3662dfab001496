"""The command line: a thin layer over `headstart.api` (and the layers below it; nothing below imports it).

Shared options live in `options.py` (one name, one meaning, one default), output helpers in `output.py`, and each
command group in its own module; every command is registered here, by name. Errors a user can cause, usage errors
included, end in one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import typer

from headstart.cli import export, finetune, fit, info, pretrain, select, serve
from headstart.cli.output import err, error_line

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Transfer learning with pretrained models: pretrain, embed, fit a head or fine-tune, evaluate, predict.",
)

COMMANDS = {
    "fit": fit.fit,
    "predict": fit.predict,
    "evaluate": fit.evaluate,
    "embed": fit.embed,
    "export": export.export,
    "lr-find": finetune.lr_find,
    "rank": select.rank,
    "diagnose": select.diagnose,
    "pretrain": pretrain.pretrain,
    "backbones": info.backbones,
    "quickstart": info.quickstart,
    "serve": serve.serve,
}
for _name, _command in COMMANDS.items():
    app.command(_name)(_command)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2; bugs keep their traceback."""
    from headstart.errors import HeadstartError

    try:
        app(standalone_mode=False)
    except HeadstartError as exc:
        error_line(str(exc))
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click's usage errors arrive here in non-standalone mode
        if not is_usage_error(exc):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # `headstart` alone: the help, as asked
            exc.show()  # type: ignore[attr-defined]
        else:
            error_line(usage_message(exc))
        sys.exit(getattr(exc, "exit_code", 2))


def usage_message(exc: Exception) -> str:
    """A usage error as one line: click's message, then where to read more."""
    message = exc.format_message()  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    return f"{message} (see: {ctx.command_path} --help)" if ctx is not None else message


def is_usage_error(exc: Exception) -> bool:
    """A click usage error (missing argument, unknown option, bad value, unknown command), from click itself or from
    the copy of click that Typer vendors (Typer 0.29: `typer._click`), whichever version resolved."""
    import click

    kinds: list[type] = [click.exceptions.ClickException]
    try:
        from typer._click.exceptions import ClickException as VendoredClickException

        kinds.append(VendoredClickException)
    except ImportError:
        pass
    return isinstance(exc, tuple(kinds))


__all__ = ["app", "main"]
