"""The HTTP service: the Open Inference Protocol v2 REST API, a plain `/predict`, Prometheus `/metrics`, a web page
at `/` and an offline API page at `/docs` (the schema itself is `/openapi.json`).

Every error is a JSON body `{"error": "..."}`: 4xx for anything the caller sent (malformed JSON, wrong fields, empty
texts, bad base64, not an image, wrong shape or datatype, too many items, a body over the limit), 429 with
Retry-After when the queue is full, 503 until the model is loaded and has answered a warm-up prediction, 504 when
a request waited longer than its time limit. The server only ever serves the model it was started with.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from headstart.errors import HeadstartError
from headstart.serve import inputs as inp
from headstart.serve.batching import Closed, MicroBatcher, QueueFull
from headstart.serve.inputs import InputError, Items
from headstart.serve.metrics import CONTENT_TYPE, Metrics
from headstart.serve.predictor import Predictor, load_predictor, warm_up_items
from headstart.serve.schemas import InferRequest, InferResponse, ModelMetadata, ServerMetadata

log = logging.getLogger("headstart.serve")


@dataclass
class ServeConfig:
    """The service's settings; `headstart serve` exposes each as an option of the same name."""

    name: str = "model"  # the model's name in /v2/models/{name}
    max_batch_size: int = 32  # items per model call
    max_wait_ms: float = 5.0  # how long the first queued item waits for others to join its batch
    max_queue: int = 256  # items waiting at most; more is answered 429 with Retry-After
    max_items: int = 64  # items in one request at most (413)
    max_body_bytes: int = 8 * 2**20  # request body size at most (413)
    timeout_s: float = 30.0  # time limit of one request, queue wait included (504)


@dataclass
class ServeState:
    config: ServeConfig
    loader: Callable[[], Predictor]
    predictor: Predictor | None = None
    ready: bool = False
    error: str | None = None
    batcher: MicroBatcher | None = None
    metrics: Metrics = field(default_factory=Metrics)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(model: str | Path | Predictor | Callable[[], Predictor], config: ServeConfig | None = None) -> FastAPI:
    """The service for one model: a model folder (headstart bundle or ONNX export), a Predictor, or a function
    that returns one (called in the background after start-up; readiness waits for it and a warm-up prediction)."""
    config = config or ServeConfig()
    if isinstance(model, (str, Path)):
        path = Path(model)
        loader: Callable[[], Predictor] = lambda: load_predictor(path)  # noqa: E731
    elif callable(model) and not hasattr(model, "probabilities"):
        loader = model
    else:
        loader = lambda: model  # type: ignore[assignment,return-value]  # noqa: E731
    state = ServeState(config, loader)
    state.batcher = MicroBatcher(
        lambda items: state.predictor.probabilities(items),  # type: ignore[union-attr]
        max_batch_size=config.max_batch_size,
        max_wait_ms=config.max_wait_ms,
        max_queue=config.max_queue,
        on_batch=lambda n: state.metrics.batch_size(n),
    )
    state.metrics = Metrics(queue_depth=lambda: state.batcher.depth, ready=lambda: state.ready)  # type: ignore

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        state.batcher.start()  # type: ignore[union-attr]
        loading = asyncio.create_task(_load(state))
        yield
        loading.cancel()
        await state.batcher.close()  # type: ignore[union-attr]  # answers everything already queued

    app = FastAPI(
        title="headstart serve",
        summary="Predictions from one headstart model: Open Inference Protocol v2, /predict, /metrics, a web page.",
        docs_url=None,  # FastAPI's Swagger UI loads its assets from a CDN; /docs below works offline
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.serve = state
    app.add_middleware(ServeMiddleware, metrics=state.metrics, max_body=config.max_body_bytes)
    _handlers(app)
    _routes(app, state)
    return app


async def _load(state: ServeState) -> None:
    """Load the model and run one warm-up prediction, off the event loop; only then is the server ready."""
    loop = asyncio.get_running_loop()
    try:
        predictor = await loop.run_in_executor(None, state.loader)
        proba = await loop.run_in_executor(None, predictor.probabilities, warm_up_items(predictor.modality))
        for task in predictor.tasks:
            if np.asarray(proba[task]).shape != (1, len(predictor.classes(task))):
                raise HeadstartError(f"warm-up: task {task!r} gave probabilities of shape {proba[task].shape}")
        state.predictor = predictor
        state.ready = True
        log.info("model %r ready (%s, tasks %s)", state.config.name, predictor.modality, predictor.tasks)
    except Exception as exc:  # the server stays up and says why it is not ready
        state.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, HeadstartError) else str(exc)
        log.error("model %r failed to load: %s", state.config.name, state.error)


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        return error(exc.status, str(exc), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return error(422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))


def _page(name: str) -> str:
    return (resources.files("headstart.serve") / "static" / name).read_text(encoding="utf-8")


def _routes(app: FastAPI, state: ServeState) -> None:  # noqa: C901 - one place that lists every route
    config = state.config
    pages = {"/": _page("index.html"), "/docs": _page("docs.html")}

    def known(name: str) -> None:
        if name != config.name:
            raise InputError(404, f"model {name!r} not found: this server serves {config.name!r}")

    def model_for(name: str) -> Predictor:
        known(name)
        if state.predictor is None:
            raise InputError(503, _not_ready(state))
        return state.predictor

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(pages["/"])

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(pages["/docs"])

    @app.get("/v2", response_model=ServerMetadata, tags=["Open Inference Protocol v2"])
    async def server_metadata() -> dict[str, Any]:
        from headstart import __version__

        return {"name": "headstart", "version": __version__, "extensions": []}

    @app.get("/v2/health/live", tags=["Open Inference Protocol v2"])
    async def live() -> Response:
        """200 while the server answers (the body is empty: the status code is the answer)."""
        return Response(status_code=200)

    @app.get("/v2/health/ready", tags=["Open Inference Protocol v2"], responses={503: {"description": "not ready"}})
    async def ready() -> Response:
        """200 once the model is loaded and a warm-up prediction passed; 503 before (or if loading failed)."""
        return Response(status_code=200) if state.ready else error(503, _not_ready(state))

    @app.get("/v2/models/{name}/ready", tags=["Open Inference Protocol v2"])
    async def model_ready(name: str) -> Response:
        known(name)
        return Response(status_code=200) if state.ready else error(503, _not_ready(state))

    @app.get("/v2/models/{name}", response_model=ModelMetadata, tags=["Open Inference Protocol v2"])
    async def metadata(name: str) -> dict[str, Any]:
        return _metadata(config.name, model_for(name))

    @app.post(
        "/v2/models/{name}/infer",
        tags=["Open Inference Protocol v2"],
        responses={200: {"model": InferResponse}, 413: {}, 422: {}, 429: {}, 503: {}, 504: {}},
    )
    async def infer(name: str, body: InferRequest) -> JSONResponse:
        """One input tensor of the model's modality in, per task a label (BYTES) and probabilities (FP32) out."""
        predictor = model_for(name)
        if not state.ready:
            raise InputError(503, _not_ready(state))
        if len(body.inputs) != 1:
            raise InputError(400, f"expected exactly one input tensor, got {len(body.inputs)}")
        outputs = _output_names(predictor)
        wanted = [o.name for o in body.outputs] if body.outputs else list(outputs)
        unknown = [w for w in wanted if w not in outputs]
        if unknown:
            raise InputError(400, f"unknown output(s) {unknown}: this model has {list(outputs)}")
        items = inp.from_tensor(body.inputs[0].model_dump(), predictor.modality, config.max_items)
        proba = await _predict(state, items)
        tensors = []
        for out in wanted:
            task, kind = outputs[out]
            p = proba[task]
            if kind == "label":
                labels = [predictor.classes(task)[i] for i in p.argmax(axis=1)]
                tensors.append({"name": out, "datatype": "BYTES", "shape": [len(labels)], "data": labels})
            else:
                tensors.append({"name": out, "datatype": "FP32", "shape": list(p.shape), "data": p.ravel().tolist()})
        answer = {"model_name": config.name, "model_version": None, "outputs": tensors}
        if body.id is not None:
            answer["id"] = body.id
        return JSONResponse(answer)

    @app.post("/predict", tags=["headstart"], openapi_extra=PREDICT_BODY)
    async def predict(request: Request) -> JSONResponse:
        """Texts as JSON `{"texts": [...], "top_k": k}`; images or audio as multipart `files` (and `top_k`)."""
        if not state.ready:
            raise InputError(503, _not_ready(state))
        predictor = state.predictor
        assert predictor is not None
        items, top_k = await _predict_request(request, predictor, config)
        proba = await _predict(state, items)
        return JSONResponse({"model": config.name, "predictions": _rows(predictor, items.names, proba, top_k)})

    @app.get("/card", tags=["headstart"])
    async def card() -> dict[str, Any]:
        """The model's card: backbone, tasks and labels, metrics, training data; what the web page shows."""
        if state.predictor is None:
            raise InputError(503, _not_ready(state))
        return {"name": config.name, **state.predictor.card(), "limits": _limits(config)}

    @app.get("/metrics", tags=["headstart"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text: requests by path and code, latency and batch-size histograms, queue depth."""
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)


PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["texts"],
                    "properties": {
                        "texts": {"type": "array", "items": {"type": "string"}},
                        "top_k": {"type": "integer", "minimum": 1, "default": 1},
                    },
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "top_k": {"type": "integer", "minimum": 1, "default": 1},
                    },
                }
            },
        },
    }
}


async def _predict_request(request: Request, predictor: Predictor, config: ServeConfig) -> tuple[Items, int]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await request.form(max_files=config.max_items + 1, max_fields=config.max_items + 8)
        uploads = [f for key in ("files", "file") for f in form.getlist(key) if not isinstance(f, str)]
        if not uploads:
            raise InputError(422, "no files: send the inputs as multipart form field 'files'")
        if len(uploads) > config.max_items:
            inp.check_count(len(uploads), config.max_items)
        files = [(u.filename or f"#{i}", await u.read()) for i, u in enumerate(uploads)]
        items = inp.from_files(files, predictor.modality, config.max_items)
        return items, _top_k(form.get("top_k", 1))
    if kind != "application/json":
        raise InputError(415, f"send application/json ({{'texts': [...]}}) or multipart/form-data files, not {kind!r}")
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(400, f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InputError(422, "the JSON body must be an object: {'texts': [...], 'top_k': k}")
    unknown = sorted(set(body) - {"texts", "top_k"})
    if unknown:
        raise InputError(422, f"unknown field(s) {unknown}: expected 'texts' and optionally 'top_k'")
    if predictor.modality != "text":
        raise InputError(415, f"this is an {predictor.modality} model: send the files as multipart/form-data")
    if "texts" not in body:
        raise InputError(422, "missing field 'texts': a list of strings")
    return inp.from_texts(body["texts"], config.max_items), _top_k(body.get("top_k", 1))


def _top_k(value: Any) -> int:
    try:
        k = int(value) if not isinstance(value, (bool, float)) else None
    except (TypeError, ValueError):
        k = None
    if k is None or k < 1:
        raise InputError(422, f"top_k must be a positive integer, got {value!r}")
    return k


async def _predict(state: ServeState, items: Items) -> dict[str, np.ndarray]:
    """The rows of `items` through the micro-batcher, each failure as the status it deserves."""
    config = state.config
    try:
        return await state.batcher.predict(items.values, timeout=config.timeout_s)  # type: ignore[union-attr]
    except QueueFull as exc:
        raise InputError(429, f"busy: {exc}", {"Retry-After": "1"}) from None
    except Closed as exc:
        raise InputError(503, str(exc), {"Retry-After": "1"}) from None
    except (TimeoutError, asyncio.TimeoutError):
        raise InputError(504, f"no answer within {config.timeout_s:g} s (--timeout)") from None
    except HeadstartError as exc:
        raise InputError(422, str(exc)) from None
    finally:
        items.close()


def _rows(predictor: Predictor, names: list[str], proba: dict[str, np.ndarray], top_k: int) -> list[dict[str, Any]]:
    """One row per input, as `TransferModel.predict_rows` gives: label, probability, and the `top_k` best."""
    rows: list[dict[str, Any]] = [{"input": n} for n in names]
    for task in predictor.tasks:
        classes = predictor.classes(task)
        for row, p in zip(rows, proba[task], strict=True):
            best = np.argsort(-p, kind="stable")[:top_k]
            row[task] = classes[best[0]]
            row[f"{task}_probability"] = float(p[best[0]])
            row[f"{task}_top"] = [{"label": classes[i], "probability": float(p[i])} for i in best]
    return rows


def _output_names(predictor: Predictor) -> dict[str, tuple[str, str]]:
    """Output tensor name -> (task, "label" | "probabilities"): `{task}` and `{task}_probabilities`."""
    out: dict[str, tuple[str, str]] = {}
    for task in predictor.tasks:
        out[task] = (task, "label")
        out[f"{task}_probabilities"] = (task, "probabilities")
    return out


def _metadata(name: str, predictor: Predictor) -> dict[str, Any]:
    modality = predictor.modality
    inputs = [
        {"name": inp.INPUT_NAMES[modality], "datatype": datatype, "shape": shape}
        for datatype, shape in _input_forms(modality)
    ]
    outputs = []
    for out, (task, kind) in _output_names(predictor).items():
        if kind == "label":
            outputs.append({"name": out, "datatype": "BYTES", "shape": [-1]})
        else:
            outputs.append({"name": out, "datatype": "FP32", "shape": [-1, len(predictor.classes(task))]})
    platform = "onnxruntime" if getattr(predictor, "kind", "") == "onnx" else "headstart_pytorch"
    return {"name": name, "versions": [], "platform": platform, "inputs": inputs, "outputs": outputs}


def _input_forms(modality: str) -> list[tuple[str, list[int]]]:
    """The tensors an input may be sent as: BYTES always (texts, or encoded files in base64), numbers by shape."""
    if modality == "image":
        return [("BYTES", [-1]), ("UINT8", [-1, -1, -1, 3]), ("FP32", [-1, -1, -1, 3])]
    if modality == "audio":
        return [("BYTES", [-1]), ("FP32", [-1, -1])]
    return [("BYTES", [-1])]


def _limits(config: ServeConfig) -> dict[str, Any]:
    return {
        "max_items": config.max_items,
        "max_body_bytes": config.max_body_bytes,
        "max_batch_size": config.max_batch_size,
        "timeout_s": config.timeout_s,
    }


def _not_ready(state: ServeState) -> str:
    if state.error:
        return f"model {state.config.name!r} failed to load: {state.error}"
    return f"model {state.config.name!r} is loading (not ready yet)"


class _BodyTooLarge(Exception):
    pass


class ServeMiddleware:
    """Outermost: caps the request body (413, by its Content-Length or as it streams in), turns any unexpected
    exception into a JSON 500, and counts every answer, status code and latency, for /metrics."""

    def __init__(self, app: Any, metrics: Metrics, max_body: int) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500, "started": False}

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
            await send(message)

        received = 0

        async def receiving() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge
            return message

        try:
            declared = dict(scope.get("headers") or []).get(b"content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
                code = 413 if declared.isdigit() else 400
                await error(code, self._too_large() if code == 413 else "bad Content-Length")(scope, receive, sending)
                return
            await self.app(scope, receiving, sending)
        except _BodyTooLarge:
            if not status["started"]:
                await error(413, self._too_large())(scope, receive, sending)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if not status["started"]:
                await error(500, "internal error (see the server's log)")(scope, receive, sending)
        finally:
            self.metrics.request(scope.get("path", ""), status["code"], time.perf_counter() - start)

    def _too_large(self) -> str:
        return f"request body over {self.max_body:,} bytes (--max-body-mb)"


def serve(
    model: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: ServeConfig | None = None,
    access_log: bool = False,
    log_level: str = "info",
) -> None:
    """Run the service until SIGINT or SIGTERM; in-flight requests are answered before it exits."""
    import uvicorn

    config = config or ServeConfig(name=Path(model).resolve().name)
    app = create_app(model, config)
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=access_log,
        log_level=log_level,
        timeout_graceful_shutdown=int(config.timeout_s) + 5,
    )
