#!/usr/bin/env python3
"""Asya runtime: hosts a user's Python handler behind a Unix socket.

The sidecar sends one envelope per request frame; the runtime calls the handler
and answers with a JSON array of outputs (SPEC section 3). This file is the
whole runtime: it uses the standard library only and runs on Python >= 3.9, so
the operator can drop it into any user image as a single file
(``python3 asya_runtime.py``); inside the asya package it is also
``python -m asya.runtime``. That is why it repeats the protocol constants from
``asya.contracts.protocol`` instead of importing them (a test keeps them equal).

Shape: one asyncio loop owns the socket; ``async def`` handlers run on it. Sync
handlers run in a thread pool (a slow call never blocks other connections). With
ASYA_RUNTIME_INLINE=auto, once their first calls proved fast they run on the loop,
saving the thread hop (half the runtime's CPU per call); one slow inline call sends
them back for good. A handler that hangs inline stalls the runtime, but the sidecar's
own timeout still ends each call (error-end) and its health check restarts the pod.
Generators are iterated as they produce items; with ``stream`` each is its own frame.

Environment:
  ASYA_HANDLER        module.function or module.Class.method (required)
  ASYA_HANDLER_MODE   payload (default) | envelope
  ASYA_SOCKET_DIR     directory of the socket and ready file (/var/run/asya); ASYA_SOCKETS_DIR too
  ASYA_RUNTIME_THREADS  size of the sync-handler thread pool (64)
  ASYA_RUNTIME_DRAIN_S  seconds to let in-flight calls finish after SIGTERM (30)
  ASYA_RUNTIME_INLINE   off (default) | auto: fast sync handlers run on the loop | on (from the first call)
"""

# Annotations stay strings: ``str | None`` in a signature is a TypeError at import on 3.9.
from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import os
import re
import signal
import struct
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# --- protocol constants (mirrors asya.contracts.protocol) ---
SOCKET_DIR_DEFAULT = "/var/run/asya"
SOCKET_NAME = "asya-runtime.sock"
READY_FILE = "runtime-ready"
FRAME_HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 64 * 1024 * 1024
HELLO_KEY = "asya_hello"  # a hello frame is an object with this one key, so never an envelope
FEATURE_STREAM = "stream"
FEATURE_REUSE = "reuse"
STREAM_ITEM = "item"
STREAM_END = "end"
PROTOCOL_VERSION = 1
INLINE_PROBATION, INLINE_FAST_S, INLINE_MAX_S = 32, 0.001, 0.010  # pool calls timed; their median; inline max

PROCESSING_ERROR = "processing_error"
MSG_PARSING_ERROR = "msg_parsing_error"

log = logging.getLogger("asya.runtime")

_HANDLER_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


class HandlerLoadError(Exception):
    """ASYA_HANDLER cannot be imported or is not callable."""


class RouteRewriteError(Exception):
    """An envelope-mode handler changed steps that are already done."""


def load_handler(path: str) -> Callable[..., Any]:
    """Import ``module.function`` or ``module.Class.method`` (the class is built once)."""
    if not path or not _HANDLER_PATH.match(path):
        raise HandlerLoadError(
            "ASYA_HANDLER must look like 'package.module.function' or 'package.module.Class.method', got %r" % path
        )
    parts = path.split(".")
    errors = []
    # Try the longest importable module prefix first so packages and attributes can share names.
    for split in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:split])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                errors.append(module_name)
                continue
            raise HandlerLoadError("importing %s failed: %s" % (module_name, exc)) from exc
        attrs = parts[split:]
        if len(attrs) > 2:
            raise HandlerLoadError("%s: expected function or Class.method after module %s" % (path, module_name))
        obj = getattr(module, attrs[0], None)
        if obj is None:
            raise HandlerLoadError("module %s has no attribute %r" % (module_name, attrs[0]))
        if len(attrs) == 2:
            if not inspect.isclass(obj):
                raise HandlerLoadError("%s.%s is not a class" % (module_name, attrs[0]))
            try:
                instance = obj()
            except Exception as exc:
                raise HandlerLoadError("building %s() failed: %s: %s" % (attrs[0], type(exc).__name__, exc)) from exc
            obj = getattr(instance, attrs[1], None)
            if obj is None:
                raise HandlerLoadError("class %s has no method %r" % (attrs[0], attrs[1]))
        if not callable(obj):
            raise HandlerLoadError("%s is not callable" % path)
        return obj  # type: ignore[no-any-return]
    raise HandlerLoadError("no importable module in %r (tried %s); is it on PYTHONPATH?" % (path, ", ".join(errors)))


def error_item(code: str, exc: BaseException) -> dict[str, Any]:
    """Error item as on the wire: code plus details a person can act on."""
    cls = type(exc)
    qual = cls.__qualname__ if cls.__module__ == "builtins" else "%s.%s" % (cls.__module__, cls.__qualname__)
    return {
        "error": code,
        "details": {
            "message": str(exc) or qual,
            "type": qual,
            "traceback": "".join(traceback.format_exception(cls, exc, exc.__traceback__)),
        },
    }


def _parsing_error(message: str, kind: str = "ValueError") -> dict[str, Any]:
    return {"error": MSG_PARSING_ERROR, "details": {"message": message, "type": kind, "traceback": ""}}


class FrameTooLarge(Exception):
    """A request frame declares more bytes than MAX_FRAME_BYTES."""

    def __init__(self, size: int) -> None:
        super().__init__(
            "request frame of %d bytes is over the runtime's limit of %d bytes: MAX_FRAME_BYTES, a constant of "
            "this file and asya.contracts.protocol (raise both to change it). The sidecar's claim check does not "
            "shrink this frame (it resolves references before calling the handler); pass large data by reference "
            "instead, e.g. an object-store key in the payload that the handler reads" % (size, MAX_FRAME_BYTES)
        )
        self.size = size


def _is_hello(obj: Any) -> bool:
    # Exactly one key: an envelope needs 'route' and 'payload', so no envelope is ever taken for a hello.
    return isinstance(obj, dict) and len(obj) == 1 and HELLO_KEY in obj


def _env_id(env: Any) -> str:
    return str(env.get("id")) if isinstance(env, dict) and env.get("id") is not None else "?"


def _check_request(env: Any) -> str | None:
    """Minimal checks the runtime needs to route outputs; the sidecar checks the rest."""
    if not isinstance(env, dict):
        return "envelope must be a JSON object"
    if "payload" not in env:
        return "envelope has no 'payload'"
    route = env.get("route")
    if not isinstance(route, dict) or not isinstance(route.get("actors"), list):
        return "envelope 'route' must be an object with an 'actors' list"
    cur = route.get("current")
    if not isinstance(cur, int) or isinstance(cur, bool) or not 0 <= cur < len(route["actors"]):
        return "envelope 'route.current' must index an actor of 'route.actors'"
    return None


class Invocation:
    """Turns one request envelope into output items, whatever the handler returns."""

    def __init__(self, handler: Callable[..., Any], mode: str, env: dict[str, Any]) -> None:
        self.handler = handler
        self.mode = mode
        self.env = env
        self.streaming = False
        """True once the handler returned a generator: its items are sent as they come."""

    def to_item(self, value: Any) -> bytes:
        """Wrap one handler result as a success item, serialised once (which also checks it is JSON)."""
        if self.mode == "envelope":
            item = self._envelope_item(value)
        else:
            route = dict(self.env["route"])
            route["current"] = route["current"] + 1
            item = {"payload": value, "route": route}
            if "headers" in self.env:
                item["headers"] = self.env["headers"]
        try:
            return _dumps(item)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                "handler returned a value that is not JSON-serializable (%s); return dicts, lists, "
                "strings, numbers, booleans or None" % exc
            ) from None

    def _envelope_item(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or "payload" not in value or not isinstance(value.get("route"), dict):
            raise TypeError("in envelope mode the handler must return envelopes (dicts with 'route' and 'payload')")
        old, new = self.env["route"], value["route"]
        cur = old["current"]
        actors = new.get("actors")
        new_cur = new.get("current")
        if not isinstance(actors, list) or actors[: cur + 1] != old["actors"][: cur + 1]:
            raise RouteRewriteError(
                "envelope-mode handler changed route steps 0..%d (done or current); only later steps may change" % cur
            )
        # ``current`` left where it is sends the envelope back to this actor: a deliberate loop, as in 0.1.x
        # (the sidecar's hop budget, x-asya-hops, stops one that never ends). Going back is refused.
        if not isinstance(new_cur, int) or isinstance(new_cur, bool) or not cur <= new_cur <= len(actors):
            raise RouteRewriteError(
                "envelope-mode handler must keep route.current at %d or advance it (got %r); steps already done "
                "cannot be re-entered" % (cur, new_cur)
            )
        return value


_DONE = object()


class Runtime:
    """Socket server around one loaded handler."""

    def __init__(
        self, handler: Callable[..., Any], mode: str, socket_dir: str, threads: int = 64, inline: str = "off"
    ) -> None:
        if mode not in ("payload", "envelope"):
            raise ValueError("ASYA_HANDLER_MODE must be 'payload' or 'envelope', got %r" % mode)
        if inline not in ("auto", "off", "on"):
            raise ValueError("ASYA_RUNTIME_INLINE must be 'auto', 'off' or 'on', got %r" % inline)
        self.is_async = inspect.iscoroutinefunction(handler) or inspect.isasyncgenfunction(handler)
        self.inline = inline == "on"
        self.probation: list[float] | None = [] if inline == "auto" else None  # call times, while judged
        self.handler = handler
        self.mode = mode
        self.socket_dir = socket_dir
        self.socket_path = os.path.join(socket_dir, SOCKET_NAME)
        self.ready_path = os.path.join(socket_dir, READY_FILE)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="asya-handler")
        self.server: asyncio.AbstractServer | None = None
        self.inflight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def start(self) -> None:
        os.makedirs(self.socket_dir, exist_ok=True)
        for path in (self.ready_path, self.socket_path):
            if os.path.exists(path):
                os.unlink(path)
        self.server = await asyncio.start_unix_server(self._serve, path=self.socket_path, limit=MAX_FRAME_BYTES)
        os.chmod(self.socket_path, 0o660)
        tmp = self.ready_path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(
                {"protocol": PROTOCOL_VERSION, "features": [FEATURE_STREAM, FEATURE_REUSE], "pid": os.getpid()}, fh
            )
        os.replace(tmp, self.ready_path)  # atomic: a reader never sees a half-written file
        log.info("runtime ready: socket=%s mode=%s", self.socket_path, self.mode)

    async def stop(self, drain_s: float) -> None:
        """Unpublish readiness and the socket at once, then let in-flight calls finish."""
        for path in (self.ready_path, self.socket_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        if self.server is not None:
            self.server.close()
        try:
            await asyncio.wait_for(self.idle.wait(), drain_s)
        except asyncio.TimeoutError:  # noqa: UP041 - a different class from TimeoutError before 3.11
            log.warning("SIGTERM: %d call(s) still running after %.0fs; exiting anyway", self.inflight, drain_s)
        self.pool.shutdown(wait=False, cancel_futures=True)

    # --- connection handling ---

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = False
        env: Any = None  # the request being answered, for the log line if the connection breaks
        try:
            while True:
                env = None
                try:
                    body = await _read_frame(reader)
                except FrameTooLarge as exc:
                    log.warning("refused request: %s", exc)
                    await _write_frame(writer, [_parsing_error(str(exc), "FrameTooLarge")], stream)
                    # Take the body so the sender can finish writing and read the answer; after it the
                    # connection is in step again (a pooled one stays usable). A false length ends at EOF.
                    if await _discard(reader, exc.size):
                        continue
                    return
                if body is None:
                    return
                try:
                    env = json.loads(body)
                except ValueError as exc:
                    log.warning("request is not valid JSON (%d bytes): %s", len(body), exc)
                    await _write_frame(writer, [_parsing_error("request is not valid JSON: %s" % exc)], stream)
                    continue
                if _is_hello(env):
                    hello = env[HELLO_KEY]
                    wanted = hello.get("features", []) if isinstance(hello, dict) else []
                    stream = FEATURE_STREAM in wanted
                    agreed = [f for f in wanted if f in (FEATURE_STREAM, FEATURE_REUSE)]
                    await _write_raw(writer, {HELLO_KEY: {"protocol": PROTOCOL_VERSION, "features": agreed}})
                    continue
                await self._handle(env, writer, stream)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            # Usually the sidecar gave up (timeout, shutdown); say which envelope lost its answer.
            if env is not None:
                log.warning("connection lost before the result of envelope %s was sent: %r", _env_id(env), exc)
            else:
                log.warning("connection lost in the middle of a request frame: %r", exc)
        except Exception:
            log.exception("runtime connection failed (envelope %s)", _env_id(env))
        finally:
            writer.close()

    async def _handle(self, env: Any, writer: asyncio.StreamWriter, stream: bool) -> None:
        problem = _check_request(env)
        if problem:
            log.warning("rejected request (envelope %s): %s", _env_id(env), problem)
            await _write_frame(writer, [_parsing_error(problem)], stream)
            return
        self.inflight += 1
        self.idle.clear()
        try:
            inv = Invocation(self.handler, self.mode, env)
            if stream:
                # Generators stream each item as it exists; other results go out in one write with the end frame.
                pending = []
                async for item in self._outputs(inv):
                    pending.append(_frame(_ITEM_OPEN + item + b"}"))
                    if inv.streaming:
                        writer.write(pending.pop())
                        await writer.drain()
                pending.append(_END_FRAME)
                writer.write(b"".join(pending))
                await writer.drain()
            else:
                items = [item async for item in self._outputs(inv)]
                await _write_bytes(writer, b"[" + b",".join(items) + b"]")
        finally:
            self.inflight -= 1
            if self.inflight == 0:
                self.idle.set()

    async def _outputs(self, inv: Invocation) -> Any:
        """Yield success items as the handler produces them, then at most one error item."""
        arg = inv.env if inv.mode == "envelope" else inv.env["payload"]
        loop = asyncio.get_running_loop()
        produced = 0  # success items already yielded: a failing generator leaves a partial fan-out behind
        try:
            if self.is_async:
                result = self.handler(arg)
                if inspect.isawaitable(result):
                    result = await result
            else:
                result = self._timed(arg) if self.inline else await loop.run_in_executor(self.pool, self._timed, arg)
                if inspect.isawaitable(result):  # e.g. a partial() over an async function
                    result = await result
            if result is None:
                return
            inv.streaming = inspect.isasyncgen(result) or inspect.isgenerator(result)
            if inspect.isasyncgen(result):
                async for value in result:
                    yield inv.to_item(value)
                    produced += 1
            elif inspect.isgenerator(result):
                while True:
                    value = await loop.run_in_executor(self.pool, next, result, _DONE)
                    if value is _DONE:
                        break
                    yield inv.to_item(value)
                    produced += 1
            elif isinstance(result, list):
                items = [inv.to_item(v) for v in result]
                for item in items:
                    yield item
            else:
                yield inv.to_item(result)
        except Exception as exc:
            failure = error_item(PROCESSING_ERROR, exc)
            failure["details"]["items_before_error"] = produced
            if produced:
                log.warning("envelope %s: handler failed after %d output(s): %r", _env_id(inv.env), produced, exc)
            yield _dumps(failure)

    def _timed(self, arg: Any) -> Any:
        """Call the sync handler (on the loop when inline, else in a pool thread) and judge how long it took."""
        started = time.perf_counter()
        try:
            return self.handler(arg)
        finally:
            took, trial = time.perf_counter() - started, self.probation
            if trial is not None and self.inline and took > INLINE_MAX_S:  # it can be slow: the pool, for good
                self.inline, self.probation = False, None
                log.info("handler took %.1f ms on the loop: sync calls go to the thread pool from now on", took * 1e3)
            elif trial is not None and not self.inline and len(trial) < INLINE_PROBATION:
                trial.append(took)
                if len(trial) >= INLINE_PROBATION:  # the median: a GIL wait in a pool thread may inflate a few
                    self.inline = sorted(trial)[len(trial) // 2] < INLINE_FAST_S
                    self.probation = trial if self.inline else None
                    log.info(
                        "sync handler proved %s: it runs %s",
                        *(("fast", "on the loop") if self.inline else ("slow", "in the pool")),
                    )


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    try:
        header = await reader.readexactly(FRAME_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    (size,) = FRAME_HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        raise FrameTooLarge(size)
    return await reader.readexactly(size)


async def _discard(reader: asyncio.StreamReader, size: int) -> bool:
    """Read and drop ``size`` bytes; False if the peer closed first."""
    try:
        while size > 0:
            chunk = await reader.read(min(size, 1 << 20))
            if not chunk:
                return False
            size -= len(chunk)
    except ConnectionError:
        return False  # the caller has logged why this frame was refused
    return True


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


async def _write_raw(writer: asyncio.StreamWriter, obj: Any) -> None:
    await _write_bytes(writer, _dumps(obj))


def _frame(data: bytes) -> bytes:
    return FRAME_HEADER.pack(len(data)) + data


_END_FRAME = _frame(b'{"' + STREAM_END.encode() + b'":true}')
_ITEM_OPEN = b'{"' + STREAM_ITEM.encode() + b'":'


async def _write_bytes(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(_frame(data))
    await writer.drain()


async def _write_frame(writer: asyncio.StreamWriter, items: list[dict[str, Any]], stream: bool) -> None:
    if stream:
        for item in items:
            await _write_raw(writer, {STREAM_ITEM: item})
        await _write_raw(writer, {STREAM_END: True})
    else:
        await _write_raw(writer, items)


def _socket_dir(env: Any) -> str:
    # the onboarding guide spells it ASYA_SOCKETS_DIR; two spellings that disagree are refused
    ours, guide = env.get("ASYA_SOCKET_DIR"), env.get("ASYA_SOCKETS_DIR")
    if ours and guide and ours != guide:
        raise ValueError("ASYA_SOCKET_DIR=%r and ASYA_SOCKETS_DIR=%r disagree; keep one of them" % (ours, guide))
    return ours or guide or SOCKET_DIR_DEFAULT


def settings_from_env(environ: dict[str, str] | None = None) -> tuple[str, str, str, int, float]:
    env = os.environ if environ is None else environ
    return (
        env.get("ASYA_HANDLER", ""),
        env.get("ASYA_HANDLER_MODE", "payload").strip().lower() or "payload",
        _socket_dir(env),
        int(env.get("ASYA_RUNTIME_THREADS", "64")),
        float(env.get("ASYA_RUNTIME_DRAIN_S", "30")),
    )


async def serve(handler_path: str, mode: str, socket_dir: str, threads: int, drain_s: float) -> int:
    """Run until SIGTERM/SIGINT; return how many calls were still running at exit."""
    handler = load_handler(handler_path)
    runtime = Runtime(handler, mode, socket_dir, threads, os.environ.get("ASYA_RUNTIME_INLINE", "off").strip().lower())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before the ready file: a SIGTERM right after it must drain
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    await stop.wait()
    log.info("signal received: draining %d in-flight call(s)", runtime.inflight)
    await runtime.stop(drain_s)
    return runtime.inflight


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("ASYA_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        handler_path, mode, socket_dir, threads, drain_s = settings_from_env()
    except ValueError as exc:
        log.critical("cannot start: %s", exc)
        return 2
    # The working directory is where user code usually lives (`python -m` adds it; a copied file does not).
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        stuck = asyncio.run(serve(handler_path, mode, socket_dir, threads, drain_s))
    except (HandlerLoadError, ValueError) as exc:
        log.critical("cannot start: %s", exc)
        return 2
    if stuck:
        # A hung sync handler holds a pool thread that the interpreter would join forever at exit.
        logging.shutdown()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
