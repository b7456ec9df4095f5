"""The HTTP edge in front of the Gradio app: which routes a caller reaches, how big and what shape
its input may be, and one error format.

Gradio 6 serves much more than this app uses: an upload route that keeps any file of any size,
a screen-recording upload, a run history that talks to the Hugging Face Hub, component servers,
and every event handler by name under /gradio_api/call/<name>, the page's private ones included
(their "private" visibility only hides them from the API docs). `Edge` is an ASGI middleware that
sees each request before Gradio's router and lets through only

    GET, HEAD  the page and its assets, /config, /gradio_api/info, the queue's event stream and
               status, heartbeats, the results of /ask calls (/gradio_api/call[/v2]/ask/<id>),
               and /gradio_api/file=<path> only for a path ``files(path)`` accepts (the app's
               own generated downloads; no other file, no URL)
    POST       /gradio_api/call/ask, /gradio_api/call/v2/ask    the documented API (curl, fetch)
               /gradio_api/queue/join                           the queue (gradio_client, the page)
               /gradio_api/run/predict                          the page's unqueued handlers
               /gradio_api/cancel, /gradio_api/reset            gradio_client's housekeeping

and answers anything else 404. The queue and run routes name a handler by number (fn_index):
a public handler is reachable only if it is in ``api`` (by name or number), the page's own
handlers only by number, which is how the page calls them. Before Gradio sees a POST the edge

  - refuses a body over ``max_body`` bytes (413), by its Content-Length or while reading it;
  - refuses a request from another site's page (an Origin that is not this server: 403);
  - parses the JSON and checks it against the handler it names (422): an API call through
    ``api[name]``, which also fills in defaults; a page handler by its input components (see
    `_check_page_inputs`: text within the Textbox's max_length, a Dropdown's own choices, a list
    of messages for a Chatbot, nothing for a State, which the server keeps) and its event data
    (an object with "index" and "value" for a like or select event);
  - and answers every error, Gradio's own included, as JSON ``{"error": "<what is wrong and the
    fix>"}``; a 422 also carries the "detail" list gradio_client turns into its ValidationError.

No Gradio import here: the edge reads the handlers from the running app (``scope["app"]``).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

from .errors import AppError

__all__ = ["MAX_BODY_BYTES", "Edge", "InputError"]

log = logging.getLogger(__name__)

# The page sends its whole chat with every question; app.ui keeps the chat short enough
# (CHAT_TURNS_KEPT turns of at most ~30 KB) to stay well under this.
MAX_BODY_BYTES = 2 * 2**20
_SMALL_BODY_BYTES = 4096  # /cancel and /reset carry a few ids
_PARSE_IN_THREAD = 256 * 2**10  # larger bodies are parsed off the event loop

API = "/gradio_api"
_GET_EXACT = frozenset({
    "/", "/config", "/theme.css", "/favicon.ico", "/manifest.json", "/robots.txt", "/pwa_icon",
    f"{API}/info", f"{API}/theme.css", f"{API}/queue/data", f"{API}/queue/status", f"{API}/startup-events",
})
_GET_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon/", f"{API}/heartbeat/")
_FILE = f"{API}/file="
_CALL = re.compile(rf"^{API}/call/(v2/)?([^/]+)$")
_CALL_RESULT = re.compile(rf"^{API}/call/(?:v2/)?([^/]+)/[^/]+$")
_SESSION = re.compile(r"^[\w-]{1,128}$")
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


class InputError(AppError, ValueError):
    """An API input of the wrong shape; ``param`` names the parameter when there is one."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class _Refused(Exception):
    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


@dataclass(frozen=True)
class _Input:
    kind: str  # the component's class name, e.g. "Textbox", "Chatbot", "State", "Dropdown"
    max_length: int | None = None  # a Textbox's
    choices: tuple | None = None  # a Dropdown's values, when no handler changes them (else Gradio checks)
    multiselect: bool = False


@dataclass(frozen=True)
class _Handler:
    id: int
    api_name: str | None
    public: bool
    inputs: tuple[_Input, ...]
    event_keys: tuple[str, ...] | None = None  # the keys its event data must have; None: it takes none


# An API check takes the call's positional and keyword inputs and returns them as the handler
# takes them, by parameter name and in order, or raises ValueError (InputError, QuestionError).
ApiCheck = Callable[[Sequence[Any], Mapping[str, Any]], dict]


class Edge:
    """ASGI middleware; ``api`` maps each public API name to its input check."""

    def __init__(self, app, api: Mapping[str, ApiCheck], max_body: int = MAX_BODY_BYTES,
                 files: Callable[[str], bool] | None = None) -> None:
        self.app, self.api, self.max_body, self.files = app, dict(api), max_body, files
        self._handlers: dict[int, _Handler] | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_json_errors(message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            receive = await self._admit(scope, receive)
            await self.app(scope, receive, _ErrorsAsJson(send_json_errors))
        except _Refused as r:
            if not started:
                await _send_error(send, r.status, r.message, r.param)
        except Exception:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if not started:
                await _send_error(send, 500, "internal error (logged on the server): try again, and report it "
                                  "if it persists")

    # ------------------------------------------------------------------ admission

    async def _admit(self, scope, receive):
        """Check the request; return the ``receive`` to pass on (replaying a body it read)."""
        method, path = scope["method"], _normal(scope["path"])
        if method in ("GET", "HEAD", "OPTIONS"):
            if path in _GET_EXACT or path.startswith(_GET_PREFIXES) or self._is_api_result(path):
                return receive
            if method != "OPTIONS" and path.startswith(_FILE) and self.files is not None and self.files(path[len(_FILE):]):
                return receive
            raise _not_found(path)
        if method != "POST":
            raise _Refused(405, f"{method} is not served here: the API is POST {API}/call/ask")
        route = self._post_route(path)
        headers = _headers(scope)
        self._check_origin(headers)
        limit = _SMALL_BODY_BYTES if route == "small" else self.max_body
        body = await _read_body(receive, headers, limit)
        payload = await _parse_json(body)
        new_payload = self._check(route, path, scope, payload)
        if new_payload is not None:
            body = json.dumps(new_payload).encode()  # ASCII escapes: a lone surrogate ("\\ud800") survives
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
            scope["headers"].append((b"content-length", str(len(body)).encode()))
        return _replay(body, receive)

    def _is_api_result(self, path: str) -> bool:
        m = _CALL_RESULT.match(path)
        return bool(m and m.group(1) in self.api)

    def _post_route(self, path: str) -> str:
        if path in (f"{API}/queue/join", f"{API}/run/predict"):
            return "indexed"
        if path in (f"{API}/cancel", f"{API}/reset"):
            return "small"
        m = _CALL.match(path)
        if m and m.group(2) in self.api:
            return "call_v2" if m.group(1) else "call"
        raise _not_found(path)

    def _check_origin(self, headers: dict[str, str]) -> None:
        """A browser names the page that sent a POST; one from another site is refused, so no other
        page can make a visitor's browser post here (uploads and forms need no CORS preflight)."""
        origin = headers.get("origin")
        if origin is None:
            return  # not a browser (curl, gradio_client), or a same-origin GET
        parts = urlsplit(origin)
        hosts = [h.strip() for h in (headers.get("host", ""), headers.get("x-forwarded-host", "")) if h.strip()]
        if any(_same_site(parts, h) for h in hosts):
            return
        raise _Refused(403, f"cross-site request refused: Origin {origin} is not this server "
                       f"({hosts[0] if hosts else 'no Host header'}); behind a reverse proxy, forward the Host header")

    # ------------------------------------------------------------------ shapes

    def _check(self, route: str, path: str, scope, payload: Any) -> Any | None:
        """Validate ``payload`` for ``route``; return a replacement payload, or None to keep it."""
        if route == "call_v2":
            if not isinstance(payload, dict):
                raise _Refused(422, 'the body must be a JSON object of named inputs, e.g. {"question": "…", "k": 5}')
            return self._api_inputs(_CALL.match(path).group(2), [], payload)
        if not isinstance(payload, dict):
            raise _Refused(422, 'the body must be a JSON object, e.g. {"data": ["2024年地区生产总值是多少？", 5]}')
        if route == "small":
            return None
        data = payload.get("data")
        if not isinstance(data, list):
            raise _Refused(422, f'"data" must be a list of inputs, got {_kind(data)}: '
                           'send e.g. {"data": ["2024年地区生产总值是多少？", 5]}', "data")
        session = payload.get("session_hash")
        if session is not None and not (isinstance(session, str) and _SESSION.match(session)):
            raise _Refused(422, '"session_hash" must be 1-128 letters, digits, "_" or "-"', "session_hash")
        if route == "call":
            inputs = self._api_inputs(_CALL.match(path).group(2), data, {})
            return {"data": list(inputs.values()), **({"session_hash": session} if session else {})}
        # the queue and the page's unqueued route: a handler by number
        index = payload.get("fn_index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise _Refused(422, f'"fn_index" must be the number of a handler, got {_kind(index)}: '
                           f"for the API, POST {API}/call/ask instead", "fn_index")
        if path.endswith("/queue/join") and session is None:
            raise _Refused(422, '"session_hash" is required to join the queue: any random string naming your session',
                           "session_hash")
        handler = self._handler(scope, index)
        if handler.public:
            inputs = self._api_inputs(handler.api_name, data, {})
            return {**payload, "data": list(inputs.values())}
        _check_page_inputs(handler, data)
        _check_event_data(handler, payload.get("event_data"))
        return None

    def _api_inputs(self, name: str | None, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict:
        try:
            return self.api[name](args, kwargs)
        except KeyError:
            raise _not_found(f"{API}/call/{name}") from None
        except ValueError as exc:  # InputError, QuestionError
            raise _Refused(422, str(exc), getattr(exc, "param", None) or _param_of(str(exc))) from None

    def _handler(self, scope, index: int) -> _Handler:
        if self._handlers is None:
            self._handlers = _handlers(scope["app"].get_blocks().fns)
        handler = self._handlers.get(index)
        if handler is None or (handler.public and handler.api_name not in self.api):
            raise _Refused(404, f"no handler {index}: the API is POST {API}/call/ask (see {API}/info)", "fn_index")
        return handler


# Event data a handler reads, by the event that triggers it (gr.LikeData, gr.SelectData read these keys).
_EVENT_KEYS = {"like": ("index", "value"), "select": ("index", "value"), "example_select": ("index", "value")}


def _handlers(fns: Mapping[int, Any]) -> dict[int, _Handler]:
    """What the edge needs to know of each handler, read once from the running app. Handlers with no
    Python function (a page-only script) are left out: nothing on the server runs for them."""
    changed = {b._id for fn in fns.values() for b in fn.outputs}  # components some handler updates
    out = {}
    for i, fn in fns.items():
        if fn.fn is None:
            continue
        inputs = []
        for b in fn.inputs:
            kind = type(b).__name__
            static = kind == "Dropdown" and b._id not in changed and not getattr(b, "allow_custom_value", False)
            inputs.append(_Input(kind, getattr(b, "max_length", None) if kind == "Textbox" else None,
                                 tuple(v for _, v in b.choices) if static else None,
                                 bool(getattr(b, "multiselect", False))))
        keys = None
        if getattr(fn, "collects_event_data", False):
            events = {t[1] for t in (fn.targets or ()) if isinstance(t, (list, tuple)) and len(t) > 1}
            keys = tuple(sorted({k for e in events for k in _EVENT_KEYS.get(e, ())}))
        out[i] = _Handler(i, fn.api_name, fn.api_visibility == "public", tuple(inputs), keys)
    return out


def _check_page_inputs(handler: _Handler, data: list) -> None:
    """A page handler's inputs, by component. Text must fit the Textbox's max_length (the chat box
    has none: its handlers keep the last turns and the engine refuses a question over 2,000
    characters); a Dropdown's value must be one of its choices when no handler changes them (when
    one does, Gradio checks the session's choices itself); a State is kept by the server, so the
    page sends nothing for it. A component the edge does not know is refused, not waved through."""
    if len(data) != len(handler.inputs):
        raise _Refused(422, f"handler {handler.id} takes {len(handler.inputs)} input(s), got {len(data)}", "data")
    for spec, value in zip(handler.inputs, data):
        if spec.kind == "Textbox":
            if not (value is None or isinstance(value, str)):
                raise _Refused(422, f"a text input must be a string, got {_kind(value)}", "data")
            if spec.max_length is not None and value is not None and len(value) > spec.max_length:
                raise _Refused(422, f"a text input of {len(value):,} characters is over its limit of "
                               f"{spec.max_length:,}: send less", "data")
        elif spec.kind == "Chatbot":
            ok = isinstance(value, list) and all(
                isinstance(m, dict) and m.get("role") in ("user", "assistant", "system") for m in value)
            if not ok:
                raise _Refused(422, 'the chat must be a list of messages {"role": "user"|"assistant", "content": …}',
                               "data")
        elif spec.kind == "State":
            if value is not None:
                raise _Refused(422, f"this input is kept by the server: send null, got {_kind(value)}", "data")
        elif spec.kind == "Dropdown":
            values = value if spec.multiselect and isinstance(value, list) else [value]
            for v in values:
                if not (v is None or isinstance(v, (str, int, float)) and not isinstance(v, bool)):
                    raise _Refused(422, f"a choice must be a string or a number, got {_kind(v)}", "data")
                if v is not None and spec.choices is not None and v not in spec.choices:
                    raise _Refused(422, f"{_kind(v)} is not one of the choices {list(spec.choices)[:8]}", "data")
        else:
            log.error("handler %s takes a %s, which the edge does not check: add it to _check_page_inputs",
                      handler.id, spec.kind)
            raise _Refused(422, f"handler {handler.id} takes an input the server does not accept from outside", "data")


def _check_event_data(handler: _Handler, event: Any) -> None:
    """A like or select event's data is an object with the keys its handler reads; other handlers
    read none, so whatever is sent is ignored (it counts against the body limit only)."""
    if handler.event_keys is None:
        return
    if not isinstance(event, dict):
        raise _Refused(422, f'"event_data" must be an object, got {_kind(event)}', "event_data")
    missing = [k for k in handler.event_keys if k not in event]
    if missing:
        raise _Refused(422, f'"event_data" needs {", ".join(missing)}', "event_data")


# ---------------------------------------------------------------------- plumbing


def _normal(path: str) -> str:
    return path.rstrip("/") or "/"


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _same_site(origin, host: str) -> bool:
    """Origin ``http://localhost:7860`` matches Host ``127.0.0.1:7860`` (both loopback); otherwise host:port must match."""
    if not origin.scheme or not origin.hostname:
        return False  # "null" (a sandboxed frame, a file:// page) is nobody's origin
    default = {"http": 80, "https": 443}.get(origin.scheme)
    o_port = origin.port or default
    h = urlsplit(f"//{host}")
    try:
        h_port = h.port or default
    except ValueError:
        return False
    if origin.hostname in _LOOPBACK and h.hostname in _LOOPBACK:
        return o_port == h_port
    return origin.hostname == h.hostname and o_port == h_port


async def _read_body(receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _Refused(400, f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise _too_large(int(declared), limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Refused(400, "the client went away before sending its request")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(size: int, limit: int) -> _Refused:
    return _Refused(413, f"request body of {size:,}+ bytes is over the limit of {limit:,}: "
                    "send less (questions are at most 2,000 characters)")


async def _parse_json(body: bytes) -> Any:
    def parse():
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[…" nested thousands deep
            raise _Refused(422, f"the body is not JSON ({type(exc).__name__}: {str(exc)[:80]}): "
                           "send a JSON object with Content-Type: application/json") from None

    if len(body) > _PARSE_IN_THREAD:
        import anyio

        return await anyio.to_thread.run_sync(parse)
    return parse()


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # afterwards: the disconnect, when it comes

    return replay


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {json.dumps(value, ensure_ascii=False)[:40]}"


def _param_of(message: str) -> str | None:
    m = re.match(r"(\w+) ", message)
    return m.group(1) if m and m.group(1) in ("question", "k", "history") else None


def _not_found(path: str) -> _Refused:
    return _Refused(404, f"{path} is not a route of this server: the API is POST {API}/call/ask "
                    f"(documented at {API}/info)")


async def _send_error(send, status: int, message: str, param: str | None = None) -> None:
    payload: dict[str, Any] = {"error": message}
    if status == 422:  # gradio_client reads this list into its ValidationError
        payload["detail"] = [{"__type__": "validate", "is_valid": False, "message": message,
                              "parameter_name": param or "input"}]
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 405:
        headers.append((b"allow", b"GET, HEAD, POST"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _ErrorsAsJson:
    """Wraps ``send``: a response with status >= 400 from Gradio is re-sent as ``{"error": …}``
    (Gradio answers {"detail": …}, plain text, or a JSON error payload whose message may be null)."""

    def __init__(self, send) -> None:
        self.send, self.start, self.chunks = send, None, []

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            self.start = message
            return
        if self.start is None or message["type"] != "http.response.body":
            await self.send(message)
            return
        self.chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        status = self.start["status"]
        await _send_error(self.send, status, _error_text(status, b"".join(self.chunks)))


def _error_text(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        payload = text
    if isinstance(payload, dict):
        payload = payload.get("error") or payload.get("detail") or ""
    if isinstance(payload, list):  # FastAPI's validation errors
        payload = "; ".join(str(d.get("msg") or d.get("message") or d) if isinstance(d, dict) else str(d)
                            for d in payload)
    text = str(payload or "")
    if not text or "Traceback" in text:  # Gradio hides an unexpected error's message (show_error=False)
        return ("internal error (logged on the server): try again, and report it if it persists" if status >= 500
                else f"request refused ({status})")
    return text[:500]
