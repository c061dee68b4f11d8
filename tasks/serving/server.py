"""`pmf serve`: a REST server for `models:/NAME@alias` that swaps to a newly promoted version in place.

- MLflow scoring protocol: `POST /invocations` → `{"predictions": [...]}` + header `X-Model-Version`.
- `/health` (liveness and readiness), `/metadata`, OpenAPI docs at `/docs`.
- The model file's SHA-256 must match the version's `pmf.sha256` tag, or the version is refused.
- A watcher thread polls the alias; a new version is downloaded, verified, loaded and warmed up
  completely before one reference is swapped, so requests in flight finish on the old model and
  none fails. A rollback is picked up the same way.
- Hot path: a bare ASGI handler (orjson, a numpy encoder, LiteRT inline in the event loop; a small
  model runs in microseconds). Everything else is a FastAPI app (docs, metadata).
- Never imports TensorFlow.
"""
from __future__ import annotations

import argparse
import hmac
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse

from tasks.serving.prediction_log import PredictionLog
from tasks.serving.request_schema import RequestError, RequestSchema
from tasks.registry.fetch import load_verified
from tasks.serving.package import IntegrityError, PackagedModel, sha256_bytes

LOG = logging.getLogger("pmf.serve")
JSON = [(b"content-type", b"application/json")]


@dataclass(frozen=True)
class ModelState:
    """One loaded version: swapped as a whole, never mutated."""

    name: str
    version: str
    alias: str | None
    model: PackagedModel
    schema: RequestSchema
    sha256: str
    loaded_at: float = field(default_factory=time.time)

    def metadata(self) -> dict[str, Any]:
        meta = self.model.meta
        return {"name": self.name, "version": self.version, "alias": self.alias, "sha256": self.sha256,
                "task": meta.get("task"), "target": meta.get("target"), "variant": meta.get("variant"),
                "metrics": meta.get("metrics", {}), "input_columns": self.model.input_columns,
                "classes": meta.get("classes", []), "loaded_at": self.loaded_at}


# ---- loading ------------------------------------------------------------------------------------



def load_state(name: str, version: str, alias: str | None, max_rows: int, cache: Path | None = None) -> ModelState:
    """Download, verify (SHA-256 against the registry tag), load and warm up one version."""
    folder = Path(tempfile.mkdtemp(prefix=f"pmf-serve-{name}-v{version}-", dir=cache))
    model = load_verified(name, version, folder)
    schema = RequestSchema(model.preprocessor, max_rows)
    state = ModelState(name, str(version), alias, model, schema, sha256_bytes(model.runner.model_bytes))  # verified digest
    warm_up(state)
    return state


def warm_up(state: ModelState, requests: int = 20) -> None:
    """First calls allocate the interpreter and tensors; do it before the version takes traffic."""
    request = state.schema.parse(orjson.dumps({"dataframe_records": [state.schema.example_record()]}))
    for _ in range(requests):
        state.model.preprocessor.decode_output(state.model.runner(state.schema.encode(request)))


# ---- the alias watcher ----------------------------------------------------------------------------

class ModelHolder:
    """The current model and the thread that follows the alias."""

    def __init__(self, state: ModelState, max_rows: int, on_swap: Callable[[ModelState, ModelState], None] | None = None):
        self.state = state
        self.max_rows = max_rows
        self.swaps = 0
        self.last_error: str | None = None
        self._on_swap = on_swap
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Poll the alias once; load and swap in a different version. True when a swap happened."""
        from tasks.registry.lifecycle import alias_version

        current = self.state
        if current.alias is None:
            return False
        target = alias_version(current.name, current.alias)
        if target is None or target == current.version:
            return False
        try:
            new = load_state(current.name, target, current.alias, self.max_rows)
        except Exception as exc:  # keep serving the old version; say why the new one was refused
            message = f"{current.name} v{target} (@{current.alias}) not loaded, still serving v{current.version}: {exc}"
            if message != self.last_error:
                LOG.error(message)
                print(f"pmf serve: {message}", file=sys.stderr, flush=True)
            self.last_error = message
            return False
        self.state = new  # one reference assignment: atomic; requests that hold the old state finish on it
        self.swaps += 1
        self.last_error = None
        print(f"pmf serve: swapped {current.name} v{current.version} -> v{new.version} (@{current.alias})", file=sys.stderr, flush=True)
        if self._on_swap:
            self._on_swap(current, new)
        return True

    def watch(self, interval_s: float) -> None:
        self._thread = threading.Thread(target=self._loop, args=(interval_s,), name="pmf-alias-watcher", daemon=True)
        self._thread.start()

    def _loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.refresh()
            except Exception as exc:  # the registry may be briefly unreachable: try again next tick
                LOG.warning("alias watch: %s", exc)

    def stop(self) -> None:
        self._stop.set()


# ---- the ASGI application ---------------------------------------------------------------------------

Send = Callable[[dict], Awaitable[None]]


class ServingApp:
    """ASGI entry point: `/invocations` and `/health` handled directly, everything else by FastAPI."""

    def __init__(self, holder: ModelHolder, log: PredictionLog | None = None, token: str | None = None):
        self.holder = holder
        self.log = log
        self.token = token.encode() if token else None
        self.api = docs_app(self)

    async def __call__(self, scope: dict, receive: Callable, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/invocations" and scope["method"] == "POST":
                return await self.invocations(scope, receive, send)
            if path in ("/health", "/ping") and scope["method"] == "GET":
                state = self.holder.state
                return await _respond(send, 200, orjson.dumps({"status": "ready", "model": state.name, "version": state.version}),
                                      [(b"x-model-version", state.version.encode())])
        await self.api(scope, receive, send)

    async def invocations(self, scope: dict, receive: Callable, send: Send) -> None:
        if self.token is not None and not self.authorized(scope):
            return await _respond(send, 401, RequestError(401, "Authorization", "Authorization: a valid bearer token is required").body(),
                                  [(b"www-authenticate", b"Bearer")])
        body = await _read_body(receive)
        state = self.holder.state  # this request uses this version from start to end
        version_header = [(b"x-model-version", state.version.encode())]
        try:
            request = state.schema.parse(body)
            predictions = state.model.preprocessor.decode_output(state.model.runner(state.schema.encode(request))).tolist()
        except RequestError as exc:
            return await _respond(send, exc.status, exc.body(), version_header)
        except Exception as exc:  # a server fault, not the client's: say so without hiding it
            LOG.exception("prediction failed")
            return await _respond(send, 500, orjson.dumps({"error_code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}"}),
                                  version_header)
        if self.log is not None:
            self.log.record(state.version, request.columns, predictions)
        await _respond(send, 200, orjson.dumps({"predictions": predictions}), version_header)

    def authorized(self, scope: dict) -> bool:
        for key, value in scope["headers"]:
            if key == b"authorization":
                return value[:7].lower() == b"bearer " and hmac.compare_digest(value[7:].strip(), self.token or b"")
        return False


async def _read_body(receive: Callable) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    while message.get("more_body"):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*JSON, (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def docs_app(serving: ServingApp) -> Any:
    """FastAPI for the rest: /metadata and the OpenAPI description of /invocations (served above)."""
    from fastapi import Depends, FastAPI, HTTPException

    state = serving.holder.state
    api = FastAPI(title=f"pmf serve: {state.name}", version=state.version,
                  description="MLflow scoring protocol for a pmf model. `/invocations` accepts `dataframe_records`, "
                              "`dataframe_split` or `inputs`; errors name the field at fault.")

    def check_token(request: Request) -> None:
        if serving.token is not None and not serving.authorized(request.scope):
            raise HTTPException(401, "Authorization: a valid bearer token is required")

    @api.get("/metadata", dependencies=[Depends(check_token)], response_model=None)
    def metadata() -> JSONResponse:
        current = serving.holder.state
        runtime = {"tensorflow_imported": "tensorflow" in sys.modules, "pid": os.getpid(), "swaps": serving.holder.swaps,
                   "last_error": serving.holder.last_error,
                   "prediction_log": str(serving.log.path) if serving.log else None}
        return JSONResponse({**current.metadata(), "runtime": runtime})

    @api.get("/health")
    def health() -> dict:
        """Liveness and readiness: 200 once a verified model is loaded (served before this app)."""
        return {"status": "ready"}

    example = {"dataframe_records": [state.schema.example_record()]}

    @api.post("/invocations", openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object"}, "example": example}}}})
    def invocations() -> dict:
        """Predict raw rows (input columns: see /metadata). Answers {"predictions": [...]} and X-Model-Version."""
        raise HTTPException(500, "served by the ASGI handler")  # never reached: ServingApp handles this path

    return api


# ---- running it -----------------------------------------------------------------------------------

def serve(name: str, alias: str | None = "production", version: str | None = None, host: str = "127.0.0.1", port: int = 8080,
          watch_interval_s: float = 5.0, max_rows: int = 10_000, prediction_log: bool = True) -> None:
    """Load the model, print one start-up line, serve until interrupted."""
    import uvicorn

    from tasks.registry.lifecycle import alias_version
    from tasks.workspace import pmf_home

    if version is None:
        version = alias_version(name, alias or "production")
        if version is None:
            raise LookupError(f"registered model {name!r} has no @{alias} version")
        pinned = False
    else:
        alias, pinned = None, True
    started = time.perf_counter()
    holder = ModelHolder(load_state(name, str(version), alias, max_rows), max_rows)
    log = PredictionLog(pmf_home() / "predictions" / f"{name}.jsonl", name).start() if prediction_log else None
    token = os.environ.get("PMF_SERVE_TOKEN") or None
    app = ServingApp(holder, log, token)
    if not pinned:
        holder.watch(watch_interval_s)
    what = f"v{version}" + (f" (@{alias}, watched every {watch_interval_s:g} s)" if alias else " (pinned)")
    auth = "bearer token required (PMF_SERVE_TOKEN)" if token else "auth off: set PMF_SERVE_TOKEN to require a bearer token"
    print(f"pmf serve: {name} {what} on http://{host}:{port} — {auth}; loaded in {time.perf_counter() - started:.2f} s",
          file=sys.stderr, flush=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                            loop=_best("uvloop", "asyncio"), http=_best("httptools", "h11"), backlog=2048)
    try:
        uvicorn.Server(config).run()
    finally:
        holder.stop()
        if log is not None:
            log.close()


def _best(module: str, fallback: str) -> str:
    try:
        __import__(module)
        return module
    except ImportError:
        return fallback


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """The server's options, shared by `pmf serve` and `python -m tasks.serving.server` (the infra check)."""
    parser.add_argument("--alias", default="production", help="follow this alias (default: %(default)s)")
    parser.add_argument("--version", help="serve this version, pinned (no alias watching)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind (default: %(default)s)")
    parser.add_argument("--watch-interval", type=float, default=5.0, help="seconds between alias polls (default: %(default)s)")
    parser.add_argument("--max-rows", type=int, default=10_000, help="larger requests get 413 (default: %(default)s)")
    parser.add_argument("--no-prediction-log", action="store_true", help="do not write PMF_HOME/predictions/NAME.jsonl")
    parser.add_argument("--verbose", action="store_true", help="show library logs")


def main(argv: list[str] | None = None) -> int:
    """`python -m tasks.serving.server`: what the infra check starts in a fresh process."""
    parser = argparse.ArgumentParser(prog="pmf-serve")
    parser.add_argument("name")
    add_serve_options(parser)
    args = parser.parse_args(argv)
    from tasks.workspace import configure_environment

    configure_environment()
    try:
        serve(args.name, args.alias, args.version, args.host, args.port, args.watch_interval, args.max_rows, not args.no_prediction_log)
    except (IntegrityError, LookupError) as exc:
        print(f"pmf serve: refused: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
