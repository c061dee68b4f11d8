"""`pmf serve`: a REST server for `models:/NAME@alias` that swaps to a newly promoted version in place.

- MLflow scoring protocol: `POST /invocations` → `{"predictions": [...]}` + header `X-Model-Version`.
- `/health` is liveness (200 while the process serves any version). `/ready` is readiness: 200 when
  the served version is the one the alias points to; 503 with `{serving, alias_points_to, error}`
  while it is not (the alias's version could not be loaded, or is still loading). `/metadata` and
  OpenAPI docs at `/docs`.
- Every version is loaded through `tasks.registry.fetch.load_verified` (each package file against
  the registered manifest); a refused version is remembered and not downloaded again.
- A watcher thread polls the alias; a new version is downloaded, verified, loaded and warmed up
  completely before one reference is swapped, so requests in flight finish on the old model and
  none fails. A rollback is picked up the same way. Download folders are removed once a version
  is in memory (or refused).
- With `PMF_SERVE_TOKEN` set, every path except `/health` needs `Authorization: Bearer TOKEN`;
  every 401 has one body. Request bodies over `--max-body-mb` get 413 before they are read.
- Settings: a command-line flag wins over the promotion settings stored with the served version
  (`watch_interval_s`, `max_batch_rows`), which win over the defaults.
- Hot path: a bare ASGI handler (orjson, a numpy encoder, LiteRT inline in the event loop; a small
  model runs in microseconds). The prediction log is written from the same loop in small slices
  (see prediction_log.py). Everything else is a FastAPI app (docs, metadata).
- Never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tasks.registry.fetch import load_verified
from tasks.serving.options import DEFAULT_MAX_BODY_MB, DEFAULT_WATCH_INTERVAL_S, TOKEN_ENV, add_serve_options
from tasks.serving.package import IntegrityError, PackagedModel, sha256_bytes
from tasks.serving.prediction_log import PredictionLog
from tasks.serving.request_schema import RequestError, RequestSchema

LOG = logging.getLogger("pmf.serve")
JSON = [(b"content-type", b"application/json")]
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # the documented exit codes (flows/cli/common.py); never 3 here
MB = 1024 * 1024
UNAUTHORIZED = RequestError(401, "Authorization", f"Authorization: a valid bearer token is required ({TOKEN_ENV} is set)")


class UsageError(ValueError):
    """A bad flag or setting: one line, exit 2."""


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
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "sha256": self.sha256,
            "task": meta.get("task"),
            "target": meta.get("target"),
            "variant": meta.get("variant"),
            "metrics": meta.get("metrics", {}),
            "input_columns": self.model.input_columns,
            "classes": meta.get("classes", []),
            "loaded_at": self.loaded_at,
        }


# ---- settings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServeSettings:
    """The effective server settings and where each came from (`flag`, `model` or `default`)."""

    watch_interval_s: float
    max_batch_rows: int
    max_body_mb: float
    sources: dict[str, str]

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * MB)

    def to_dict(self) -> dict[str, Any]:
        return {
            "watch_interval_s": self.watch_interval_s,
            "max_batch_rows": self.max_batch_rows,
            "max_body_mb": self.max_body_mb,
            "sources": self.sources,
        }


def resolve_settings(
    name: str, version: str, watch_interval_s: float | None, max_batch_rows: int | None, max_body_mb: float | None
) -> ServeSettings:
    """Flag (not None) > the promotion settings stored with `name` v`version` > default.

    UsageError when the stored settings do not parse (the user must fix the model's config, not guess)."""
    from pydantic import ValidationError

    from tasks.registry.promotion import settings_for_version
    from tasks.registry.promotion_settings import PromotionSettings

    try:
        stored = settings_for_version(name, version)
    except (ValidationError, ValueError) as exc:
        raise UsageError(f"the promotion settings stored with {name} v{version} do not parse: {_first_line(exc)}") from None
    defaults = PromotionSettings()
    sources: dict[str, str] = {}

    def pick(key: str, flag: Any, from_model: Any, default: Any) -> Any:
        if flag is not None:
            sources[key] = "flag"
            return flag
        sources[key] = "model" if from_model != default else "default"
        return from_model

    return ServeSettings(
        watch_interval_s=float(pick("watch_interval_s", watch_interval_s, stored.watch_interval_s, defaults.watch_interval_s)),
        max_batch_rows=int(pick("max_batch_rows", max_batch_rows, stored.max_batch_rows, defaults.max_batch_rows)),
        max_body_mb=float(pick("max_body_mb", max_body_mb, DEFAULT_MAX_BODY_MB, DEFAULT_MAX_BODY_MB)),
        sources=sources,
    )


# ---- loading --------------------------------------------------------------------------------------


def load_state(name: str, version: str, alias: str | None, max_rows: int) -> ModelState:
    """Download, verify, load and warm up one version. The download folder is removed before this
    returns (the package is in memory by then), whether the version loaded or was refused."""
    folder = Path(tempfile.mkdtemp(prefix=f"pmf-serve-{name}-v{version}-"))
    try:
        model = load_verified(name, str(version), folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    schema = RequestSchema(model.preprocessor, max_rows)
    state = ModelState(name, str(version), alias, model, schema, sha256_bytes(model.runner.model_bytes))
    warm_up(state)
    return state


def warm_up(state: ModelState, requests: int = 20) -> None:
    """First calls allocate the interpreter and tensors; do it before the version takes traffic."""
    request = state.schema.parse(orjson.dumps({"dataframe_records": [state.schema.example_record()]}))
    for _ in range(requests):
        state.model.preprocessor.decode_output(state.model.runner(state.schema.encode(request)))


# ---- the alias watcher ----------------------------------------------------------------------------


class ModelHolder:
    """The current model, what its alias points to, and the thread that follows the alias.

    A version refused for its contents (IntegrityError) is remembered: later polls do not download it
    again while the alias keeps pointing at it. Registry errors are retried on the next poll."""

    def __init__(self, state: ModelState, max_rows: int, on_swap: Callable[[ModelState, ModelState], None] | None = None):
        self.state = state
        self.max_rows = max_rows
        self.alias_points_to: str | None = state.version if state.alias else None
        self.swaps = 0
        self.polls = 0
        self.load_attempts = 0  # versions downloaded after start-up (swaps and refusals)
        self.last_error: str | None = None
        self.refused: dict[str, str] = {}
        self._on_swap = on_swap
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pinned(self) -> bool:
        return self.state.alias is None

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, body): ready when pinned, or when the served version is the one the alias points to."""
        current = self.state
        body: dict[str, Any] = {"serving": current.version, "alias": current.alias, "alias_points_to": self.alias_points_to}
        if self.pinned or self.alias_points_to == current.version:
            return True, {"status": "ready", **body}
        error = self.last_error or f"v{self.alias_points_to} is loading"
        return False, {"status": "not_ready", **body, "error": error}

    def refresh(self) -> bool:
        """Poll the alias once; load and swap in a different version. True when a swap happened."""
        from mlflow.exceptions import MlflowException

        from tasks.registry.lifecycle import alias_version

        current = self.state
        if current.alias is None:
            return False
        self.polls += 1
        target = alias_version(current.name, current.alias)
        self.alias_points_to = target
        if target is None:
            self._report(f"@{current.alias} of {current.name} points to no version, still serving v{current.version}")
            return False
        if target == current.version:
            self.last_error = None
            return False
        if target in self.refused:
            self.last_error = self.refused[target]
            return False
        self.load_attempts += 1
        try:
            new = load_state(current.name, target, current.alias, self.max_rows)
        except IntegrityError as exc:  # the version's files are not the registered ones: never load it
            self.refused[target] = self._report(self._not_loaded(target, exc))
            return False
        except (MlflowException, OSError) as exc:  # the store may be briefly unreachable: try again next poll
            self._report(self._not_loaded(target, exc))
            return False
        self.state = new  # one reference assignment: atomic; requests that hold the old state finish on it
        self.swaps += 1
        self.last_error = None
        print(
            f"pmf serve: swapped {current.name} v{current.version} -> v{new.version} (@{current.alias})",
            file=sys.stderr,
            flush=True,
        )
        if self._on_swap:
            self._on_swap(current, new)
        return True

    def _not_loaded(self, version: str, exc: BaseException) -> str:
        current = self.state
        return f"{current.name} v{version} (@{current.alias}) not loaded, still serving v{current.version}: {_first_line(exc)}"

    def _report(self, message: str) -> str:
        if message != self.last_error:  # once per distinct problem, not on every poll
            print(f"pmf serve: {message}", file=sys.stderr, flush=True)
        self.last_error = message
        return message

    def watch(self, interval_s: float) -> None:
        self._thread = threading.Thread(target=self._loop, args=(interval_s,), name="pmf-alias-watcher", daemon=True)
        self._thread.start()

    def _loop(self, interval_s: float) -> None:
        from mlflow.exceptions import MlflowException

        while not self._stop.wait(interval_s):
            try:
                self.refresh()
            except (MlflowException, OSError) as exc:  # the registry may be briefly unreachable: try again next tick
                self._report(f"cannot read @{self.state.alias} of {self.state.name}: {_first_line(exc)}")

    def stop(self) -> None:
        self._stop.set()


# ---- the ASGI application ---------------------------------------------------------------------------

Send = Callable[[dict], Awaitable[None]]


class BodyTooLarge(Exception):
    def __init__(self, size: int | None, limit: int):
        what = f"{size:,} bytes exceed" if size is not None else "more bytes than"
        super().__init__(f"body: {what} the limit of {limit / MB:g} MB ({limit:,} bytes; --max-body-mb)")


class ServingApp:
    """ASGI entry point: `/invocations`, `/health`, `/ready` and the token check handled directly,
    everything else by FastAPI."""

    def __init__(
        self,
        holder: ModelHolder,
        log: PredictionLog | None = None,
        token: str | None = None,
        settings: ServeSettings | None = None,
    ):
        self.holder = holder
        self.log = log
        self.token = token.encode() if token else None
        self.settings = settings or ServeSettings(DEFAULT_WATCH_INTERVAL_S, holder.max_rows, DEFAULT_MAX_BODY_MB, {})
        self.max_body_bytes = self.settings.max_body_bytes
        self.api = docs_app(self)

    async def __call__(self, scope: dict, receive: Callable, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/health" and scope["method"] in ("GET", "HEAD"):
                state = self.holder.state
                return await _respond(
                    send,
                    200,
                    orjson.dumps({"status": "alive", "model": state.name, "version": state.version}),
                    [(b"x-model-version", state.version.encode())],
                )
            if self.token is not None and not self.authorized(scope):
                return await _respond(send, 401, UNAUTHORIZED.body(), [(b"www-authenticate", b"Bearer")])
            if path == "/invocations" and scope["method"] == "POST":
                return await self.invocations(scope, receive, send)
            if path == "/ready" and scope["method"] in ("GET", "HEAD"):
                ready, body = self.holder.readiness()
                return await _respond(send, 200 if ready else 503, orjson.dumps(body))
        await self.api(scope, receive, send)
        return None

    async def invocations(self, scope: dict, receive: Callable, send: Send) -> None:
        try:
            body = await _read_body(scope, receive, self.max_body_bytes)
        except BodyTooLarge as exc:  # answer and close: the rest of the body is never read
            return await _respond(send, 413, RequestError(413, "body", str(exc)).body(), [(b"connection", b"close")])
        state = self.holder.state  # this request uses this version from start to end
        version_header = [(b"x-model-version", state.version.encode())]
        try:
            request = state.schema.parse(body)
            predictions = state.model.preprocessor.decode_output(state.model.runner(state.schema.encode(request))).tolist()
        except RequestError as exc:
            return await _respond(send, exc.status, exc.body(), version_header)
        except Exception as exc:  # a server fault, not the client's: answer 500 with its name, log the traceback
            LOG.exception("prediction failed")
            return await _respond(
                send,
                500,
                orjson.dumps({"error_code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}"}),
                version_header,
            )
        if self.log is not None:
            self.log.record(state.version, request.columns, predictions)
        await _respond(send, 200, orjson.dumps({"predictions": predictions}), version_header)
        return None

    def authorized(self, scope: dict) -> bool:
        for key, value in scope["headers"]:
            if key == b"authorization":
                return value[:7].lower() == b"bearer " and hmac.compare_digest(value[7:].strip(), self.token or b"")
        return False


async def _read_body(scope: dict, receive: Callable, limit: int) -> bytes:
    """The request body, at most `limit` bytes: BodyTooLarge from Content-Length before reading, or as soon as
    a body sent without one (chunked) grows past the limit."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                size = int(value)
            except ValueError:
                size = None  # the HTTP parser rejects these before they reach the app
            if size is not None and size > limit:
                raise BodyTooLarge(size, limit)
    chunks, received = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge(None, limit)
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*JSON, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def docs_app(serving: ServingApp) -> Any:
    """FastAPI for the rest: /metadata and the OpenAPI description of the paths served above.
    The token (when set) is checked before a request reaches this app."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import JSONResponse

    state = serving.holder.state
    api = FastAPI(
        title=f"pmf serve: {state.name}",
        version=state.version,
        description="MLflow scoring protocol for a pmf model. `/invocations` accepts `dataframe_records`, "
        "`dataframe_split` or `inputs`; errors name the field at fault.",
    )

    @api.get("/metadata", response_model=None)
    def metadata() -> JSONResponse:
        holder = serving.holder
        current = holder.state
        runtime = {
            "tensorflow_imported": "tensorflow" in sys.modules,
            "pid": os.getpid(),
            "swaps": holder.swaps,
            "serving": current.version,
            "alias_points_to": holder.alias_points_to,
            "last_error": holder.last_error,
            "refused_versions": dict(holder.refused),
            "polls": holder.polls,
            "load_attempts": holder.load_attempts,
            "settings": serving.settings.to_dict(),
            "prediction_log": serving.log.stats() if serving.log else None,
        }
        return JSONResponse({**current.metadata(), "runtime": runtime})

    @api.get("/health")
    def health() -> dict:
        """Liveness: 200 while the process serves any version (never needs the token)."""
        raise HTTPException(500, "served by the ASGI handler")  # never reached: ServingApp handles this path

    @api.get("/ready")
    def ready() -> dict:
        """Readiness: 200 when the served version is the alias's; else 503 with {serving, alias_points_to, error}."""
        raise HTTPException(500, "served by the ASGI handler")  # never reached: ServingApp handles this path

    example = {"dataframe_records": [state.schema.example_record()]}

    @api.post(
        "/invocations",
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}, "example": example}}}
        },
    )
    def invocations() -> dict:
        """Predict raw rows (input columns: see /metadata). Answers {"predictions": [...]} and X-Model-Version."""
        raise HTTPException(500, "served by the ASGI handler")  # never reached: ServingApp handles this path

    return api


# ---- running it -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServeRequest:
    """What the user asked for; None means "not given" (the model's stored setting or the default applies)."""

    name: str
    alias: str | None = "production"
    version: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    watch_interval_s: float | None = None
    max_rows: int | None = None
    max_body_mb: float | None = None
    prediction_log: bool = True
    insecure: bool = False

    @classmethod
    def from_args(cls, name: str, args: argparse.Namespace) -> ServeRequest:
        return cls(
            name,
            args.alias,
            args.version,
            args.host,
            args.port,
            args.watch_interval,
            args.max_rows,
            args.max_body_mb,
            not args.no_prediction_log,
            args.insecure,
        )


def run_serve(request: ServeRequest) -> int:
    """Serve until SIGINT/SIGTERM; every failure is one line on stderr and the documented exit code:
    2 for a usage error (flags, unknown model or version, port in use), 1 for a refused model or a store
    that cannot be read. Never a traceback for these."""
    from mlflow.exceptions import MlflowException

    try:
        serve(request)
    except (UsageError, LookupError) as exc:
        print(f"pmf serve: usage_error: {_first_line(exc)}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except IntegrityError as exc:
        print(f"pmf serve: refused: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except MlflowException as exc:
        from tasks.workspace import tracking_uri

        print(
            f"pmf serve: failed: cannot read the model registry at {tracking_uri()}: {_first_line(exc)}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_FAILED
    except OSError as exc:  # e.g. the prediction log's folder cannot be written
        print(f"pmf serve: failed: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("pmf serve: interrupted before serving", file=sys.stderr, flush=True)
        return EXIT_FAILED
    return EXIT_OK


def serve(request: ServeRequest) -> None:
    """Check the flags, find the version, bind the socket, load the model, print one start-up line, serve
    until interrupted, then write what the prediction log still holds."""
    from tasks.workspace import pmf_home

    token = os.environ.get(TOKEN_ENV) or None
    check_exposure(request.host, token, request.insecure)
    version, alias = resolve_version(request.name, request.alias, request.version)
    settings = resolve_settings(request.name, version, request.watch_interval_s, request.max_rows, request.max_body_mb)
    sock = bind_socket(request.host, request.port)
    holder: ModelHolder | None = None
    log: PredictionLog | None = None
    try:
        started = time.perf_counter()
        holder = ModelHolder(load_state(request.name, version, alias, settings.max_batch_rows), settings.max_batch_rows)
        log = PredictionLog(pmf_home() / "predictions" / f"{request.name}.jsonl").open() if request.prediction_log else None
        app = ServingApp(holder, log, token, settings)
        if alias is not None:
            holder.watch(settings.watch_interval_s)
        _freeze_startup_objects()
        what = f"v{version}" + (f" (@{alias}, watched every {settings.watch_interval_s:g} s)" if alias else " (pinned)")
        auth = f"bearer token required ({TOKEN_ENV})" if token else f"auth off: set {TOKEN_ENV} to require a bearer token"
        host = f"[{request.host}]" if ":" in request.host else request.host
        print(
            f"pmf serve: {request.name} {what} serving on http://{host}:{request.port} — {auth}; "
            f"loaded in {time.perf_counter() - started:.2f} s",
            file=sys.stderr,
            flush=True,
        )
        _run_uvicorn(app, sock, log)
    finally:
        sock.close()
        if holder is not None:
            holder.stop()
        if log is not None:
            log.close()


def resolve_version(name: str, alias: str | None, version: str | None) -> tuple[str, str | None]:
    """(version, alias to follow): the alias's version, or the pinned `version` (then no alias).
    LookupError naming what is missing; MlflowException when the registry cannot be read."""
    from mlflow.exceptions import MlflowException

    from tasks.registry import tracking

    client = tracking.client()
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise LookupError(f"no registered model named {name!r} (see `pmf models`)") from None
        raise
    if version is None:
        alias = alias or "production"
        found = model.aliases.get(alias)
        if found is None:
            known = ", ".join(f"@{a}" for a in sorted(model.aliases)) or "none"
            raise LookupError(f"{name} has no @{alias} version (aliases: {known}); promote one or pass --version")
        return str(found), alias
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise LookupError(f"{name} has no version {version!r} (see `pmf models {name}`)") from None
        raise
    return str(version), None


def check_exposure(host: str, token: str | None, insecure: bool) -> None:
    """A server reachable from other machines must require a token, unless the user says --insecure."""
    if token is None and not insecure and not is_loopback(host):
        raise UsageError(
            f"--host {host} is reachable from other machines and {TOKEN_ENV} is not set: "
            f"set {TOKEN_ENV} to require a bearer token, or pass --insecure to serve without one"
        )


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback one (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: not an address or a name this machine can resolve ({exc.strerror})") from None
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def bind_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound (not yet listening: connections are refused until the model is loaded).
    UsageError naming the flag when the address is taken or not this machine's."""
    import errno

    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: not an address or a name this machine can resolve ({exc.strerror})") from None
    sock = socket.socket(family, kind, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart need not wait for TIME_WAIT
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"--port {port}: {host}:{port} is already in use; stop what listens there or pick another port"
            ) from None
        if exc.errno == errno.EACCES:
            raise UsageError(f"--port {port}: permission denied (ports below 1024 need privileges)") from None
        raise UsageError(f"--host {host}: cannot bind {host}:{port} ({exc.strerror})") from None
    sock.set_inheritable(True)
    return sock


def _run_uvicorn(app: ServingApp, sock: socket.socket, log: PredictionLog | None) -> None:
    """Uvicorn on our socket, with the prediction log's writer on the same event loop."""
    import uvicorn

    class GracefulServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            """SIGINT/SIGTERM end the server gracefully and `serve` returns. uvicorn's own version raises
            the signal again afterwards, which kills the process (SIGTERM) before the prediction log is
            written, or ends in a KeyboardInterrupt traceback (SIGINT)."""
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop=_best("uvloop", "asyncio"),
        http=_best("httptools", "h11"),
        backlog=2048,
        timeout_graceful_shutdown=10,
    )
    server = GracefulServer(config)

    async def main() -> None:
        writer = asyncio.get_running_loop().create_task(log.run()) if log is not None else None
        try:
            await server.serve(sockets=[sock])
        finally:
            if writer is not None:
                writer.cancel()

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(main())


def _freeze_startup_objects() -> None:
    """Move everything allocated so far (MLflow, FastAPI, pandas, the model: ~280k objects) out of the
    garbage collector's reach. Without this, objects of requests that outlive a few collections (the
    prediction log's queue holds them for a moment) trigger full collections that walk the whole heap:
    pauses of 100-300 ms measured at concurrency 8, which were the p99 latency with the log on."""
    import gc

    gc.collect()
    gc.freeze()


def _best(module: str, fallback: str) -> str:
    try:
        __import__(module)
        return module
    except ImportError:
        return fallback


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# ---- options ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`python -m tasks.serving.server`: what the infra check starts in a fresh process."""
    parser = argparse.ArgumentParser(prog="pmf-serve")  # usage errors exit 2
    parser.add_argument("name")
    add_serve_options(parser)
    args = parser.parse_args(argv)
    from tasks.workspace import configure_environment

    configure_environment(verbose=args.verbose)
    return run_serve(ServeRequest.from_args(args.name, args))


if __name__ == "__main__":
    sys.exit(main())
