"""`serve`: one model over HTTP (Open Inference Protocol v2, /predict, /metrics, a web page at /)."""

from __future__ import annotations

from pathlib import Path

import typer

SERVE_PANEL = "Batching and limits"


def serve(
    model: Path = typer.Argument(..., help="a model folder: `headstart fit --out` or an ONNX export (export.json)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, "--port", help="TCP port to listen on"),
    name: str = typer.Option(None, "--name", help="the model's name in /v2/models/NAME (default: the folder's)"),
    max_batch_size: int = typer.Option(
        32, "--max-batch-size", min=1, help="items per model call at most", rich_help_panel=SERVE_PANEL
    ),
    max_wait_ms: float = typer.Option(
        5.0,
        "--max-wait-ms",
        min=0,
        help="how long a queued item waits for others to join its batch",
        rich_help_panel=SERVE_PANEL,
    ),
    max_queue: int = typer.Option(
        256, "--max-queue", min=1, help="items waiting at most; more is answered 429", rich_help_panel=SERVE_PANEL
    ),
    max_items: int = typer.Option(
        64, "--max-items", min=1, help="items in one request at most (413)", rich_help_panel=SERVE_PANEL
    ),
    max_body_mb: float = typer.Option(
        8.0, "--max-body-mb", min=0.001, help="request body size at most, MiB (413)", rich_help_panel=SERVE_PANEL
    ),
    timeout: float = typer.Option(
        30.0,
        "--timeout",
        min=0.001,
        help="seconds one request may take, queue included (504)",
        rich_help_panel=SERVE_PANEL,
    ),
    access_log: bool = typer.Option(False, "--access-log", help="log every request (uvicorn's access log)"),
) -> None:
    """Serve a saved model: the web page at /, the API at /v2/models/NAME/infer and /predict, docs at /docs."""
    from headstart.bundle import MANIFEST
    from headstart.errors import BundleError
    from headstart.serve import ServeConfig
    from headstart.serve import serve as run
    from headstart.serve.predictor import EXPORT_MANIFEST

    if not ((model / MANIFEST).is_file() or (model / EXPORT_MANIFEST).is_file()):
        raise BundleError(f"{model}: not a model folder (no {MANIFEST} or {EXPORT_MANIFEST} in it)")
    config = ServeConfig(
        name=name or model.resolve().name,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        max_items=max_items,
        max_body_bytes=int(max_body_mb * 2**20),
        timeout_s=timeout,
    )
    typer.echo(f"serving {config.name!r} on http://{host}:{port}/ (API docs at /docs); Ctrl+C stops", err=True)
    run(model, host=host, port=port, config=config, access_log=access_log)
