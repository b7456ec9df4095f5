"""Fault and abuse: the running server (app.ui.serve in a child process) against hostile HTTP callers.

The server is the production one (`serve`: the Gradio app behind app/edge.py) over the fake
embedder, so the suite needs no model and measures the server, not the model: what the edge lets
through, what it refuses and how, and whether hostile traffic slows normal questions or grows the
server's memory. Traffic goes to 127.0.0.1 only, bounded in count and time.

The soak prints its figures (run with -s); its pass/fail limits are the issue's (p95 of normal
questions under 2 s while hostile requests run) or deliberately generous (memory growth).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.edge import MAX_BODY_BYTES
from app.ui import CHAT_TURNS_KEPT
from app.workbench import is_download

from .conftest import REPORT, ROOT, free_port

STARTUP_TIMEOUT = 180  # seconds for the child to build its fake index and listen: a bound, not a target
TIMEOUT = 60  # per request: a bound against hangs

SERVER = r"""
import os, shutil, sys, threading, time
from pathlib import Path

parent = os.getppid()


def exit_with_parent():  # a killed test run must not leave a server behind
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


threading.Thread(target=exit_with_parent, daemon=True).start()

from app.config import Settings
from app.engine import Engine
from app.ui import serve
from tests.conftest import FakeEmbedder

root, port, report = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
(root / "corpus").mkdir(parents=True, exist_ok=True)
shutil.copy(report, root / "corpus" / report.name)
engine = Engine.open(Settings(corpus_dir=root / "corpus", index_dir=root / "index", model="fake-bigram-64"),
                     embedder=FakeEmbedder())
serve(engine, "127.0.0.1", port)
"""


class Live:
    def __init__(self, url: str, proc: subprocess.Popen, temp: Path, log: Path) -> None:
        self.url, self.proc, self.temp, self.log = url, proc, temp, log
        self._fns: dict[str, int] | None = None

    def fn_index(self, api_name: str) -> int:
        """The number the page uses for one of its handlers (from /config, as the page reads it)."""
        if self._fns is None:
            import httpx

            config = httpx.get(self.url + "/config", timeout=TIMEOUT).json()
            self._fns = {d["api_name"]: d["id"] for d in config["dependencies"] if d.get("api_name")}
        return self._fns[api_name]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    import httpx

    root = tmp_path_factory.mktemp("live")
    temp, log = root / "gradio-temp", root / "server.log"
    temp.mkdir()
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(temp), "PYTHONUNBUFFERED": "1",
           "APP_FEEDBACK_DB": str(root / "feedback.sqlite3")}  # never the user's own database
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", SERVER, str(root), str(port), str(REPORT)], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url + "/config", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not listen within {STARTUP_TIMEOUT}s:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    yield Live(url, proc, temp, log)
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


@pytest.fixture
def http(live):
    import httpx

    with httpx.Client(base_url=live.url, timeout=TIMEOUT) as client:
        yield client


# ----------------------------------------------------------------------------- helpers


def _message(role: str, text: str) -> dict:
    return {"role": role, "metadata": None, "content": [{"type": "text", "text": text}], "options": None}


def _chat(turns: int, question: str = "2024年新增就业多少人？", pad: int = 0) -> list[dict]:
    out = []
    for _ in range(turns):
        out += [_message("user", question + "就业" * pad), _message("assistant", "…")]
    return out


def _assert_error(response, status: int, *needles: str) -> str:
    """An error in the one format: the status, JSON {"error": <message>}, no traceback."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text
    payload = response.json()
    assert isinstance(payload, dict) and isinstance(payload.get("error"), str) and payload["error"], payload
    for needle in needles:
        assert needle in payload["error"], payload["error"]
    return payload["error"]


def _sse(client, path: str, until: tuple[str, ...], params: dict | None = None) -> list[tuple[str, str]]:
    """Read a Gradio event stream until an event named in ``until`` (or a queue message of that kind)."""
    events, event = [], "message"
    with client.stream("GET", path, params=params) as r:
        assert r.status_code == 200, r.read()[:500]
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
                events.append((event, data))
                if event in until or any(f'"msg":"{u}"' in data.replace(" ", "") for u in until):
                    break
    return events


def _ask_call(client, body: dict, route: str = "/gradio_api/call/ask") -> tuple[str, object]:
    """POST an /ask call and read its result: ("complete", answer) or ("error", payload)."""
    r = client.post(route, json=body)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    event_id = r.json()["event_id"]
    events = _sse(client, f"{route}/{event_id}", ("complete", "error"))
    event, data = events[-1]
    assert "Traceback" not in data
    payload = json.loads(data)
    return event, payload[0] if event == "complete" else payload


def _join_body(fn_index: int, data: list, session: str = "SESSION") -> bytes:
    return json.dumps({"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None,
                       "trigger_id": None}, ensure_ascii=False).encode()


def _join(client, fn_index: int, data: list | bytes, session: str) -> tuple[int, object]:
    """Join the queue as the page does and read the result: (status, output data or error payload).
    ``data`` may be a body made by `_join_body` once (session "SESSION"), to spare re-encoding it."""
    body = data.replace(b'"SESSION"', json.dumps(session).encode()) if isinstance(data, bytes) \
        else _join_body(fn_index, data, session)
    r = client.post("/gradio_api/queue/join", content=body, headers={"Content-Type": "application/json"})
    if r.status_code != 200:
        return r.status_code, r
    for _, data in reversed(_sse(client, "/gradio_api/queue/data", ("process_completed",), {"session_hash": session})):
        message = json.loads(data)
        if message.get("msg") == "process_completed":
            return 200, message["output"]["data"] if message["success"] else message["output"]
    raise AssertionError("no process_completed message")


# ----------------------------------------------------------------------------- 1: no open upload route


def test_the_upload_route_is_closed_and_keeps_no_file(live, http):
    r = http.post("/gradio_api/upload", files={"files": ("big.bin", b"\0" * 2**20)})
    _assert_error(r, 404, "/gradio_api/call/ask")
    # Gradio's folder holds only the page's own generated downloads (the figures CSV, the empty export)
    assert [p.name for p in live.temp.rglob("*") if p.is_file() and not is_download(str(p), str(live.temp))] == []


def test_the_screen_recording_upload_is_closed(http):
    _assert_error(http.post("/gradio_api/process_recording", files={"video": ("a.mp4", b"\0" * 1024)}), 404)


def test_a_post_from_another_sites_page_is_refused(http):
    r = http.post("/gradio_api/call/ask", json={"data": ["2024年地区生产总值是多少？"]},
                  headers={"Origin": "http://evil.example"})
    _assert_error(r, 403, "evil.example")


def test_a_post_from_the_page_itself_is_accepted(live, http):
    r = http.post("/gradio_api/call/ask", json={"data": ["2024年地区生产总值是多少？"]},
                  headers={"Origin": live.url.replace("127.0.0.1", "localhost")})
    assert r.status_code == 200 and "event_id" in r.json()


def test_a_body_over_the_limit_is_refused_by_its_length(http):
    r = http.post("/gradio_api/queue/join", content=b" " * (MAX_BODY_BYTES + 1),
                  headers={"Content-Type": "application/json"})
    _assert_error(r, 413, f"{MAX_BODY_BYTES:,}")


def test_a_body_over_the_limit_is_refused_while_streaming_without_a_length(http):
    def chunks():
        for _ in range(MAX_BODY_BYTES // 2**16 + 2):
            yield b" " * 2**16

    r = http.post("/gradio_api/queue/join", content=chunks(), headers={"Content-Type": "application/json"})
    _assert_error(r, 413)


# ----------------------------------------------------------------------------- 2: the chat's handlers


@pytest.mark.parametrize("name", ["add_user", "add_reply", "add_example", "add_reply_1", "on_like", "on_feedback_detail",
                                  "show_place", "on_find", "on_filter", "export_file", "on_load"])
@pytest.mark.parametrize("route", ["/gradio_api/call/{}", "/gradio_api/call/v2/{}", "/gradio_api/run/{}",
                                   "/gradio_api/api/{}"])
def test_the_pages_handlers_are_not_api_routes(http, name, route):
    _assert_error(http.post(route.format(name), json={"data": [[]]}), 404)


def test_the_api_lists_only_ask(live):
    from gradio_client import Client

    client = Client(live.url, verbose=False, analytics_enabled=False, download_files=False)
    try:
        api = client.view_api(return_format="dict", print_info=False)
    finally:
        client.close()
    assert list(api["named_endpoints"]) == ["/ask"] and not api["unnamed_endpoints"]


def test_a_huge_chat_history_is_clipped_to_the_last_turns(live, http):
    history = [*_chat(300, pad=700), _message("user", "那2025年呢？")]  # ~1.3 MB, under the body limit
    status, output = _join(http, live.fn_index("add_reply"), [history, None, None], "huge-history")
    assert status == 200, output
    chat = output[0]
    assert sum(m["role"] == "user" for m in chat) == CHAT_TURNS_KEPT
    assert chat[-1]["role"] == "assistant" and "qa-error" not in str(chat[-1]["content"])


def test_the_page_handler_refuses_inputs_of_the_wrong_shape(live, http):
    r = http.post("/gradio_api/run/predict", json={"data": [5, "not a chat", None], "fn_index": live.fn_index("add_user"),
                                                   "session_hash": "wrong-shape"})
    _assert_error(r, 422)


def test_an_unknown_handler_number_is_not_found(http):
    r = http.post("/gradio_api/queue/join", json={"data": [], "fn_index": 9999, "session_hash": "x1"})
    _assert_error(r, 404, "9999")


def test_the_chat_round_trip_still_works_the_way_the_page_does_it(live, http):
    r = http.post("/gradio_api/run/predict", json={"data": ["2024年新增就业多少人？", [], None],
                                                   "fn_index": live.fn_index("add_user"), "session_hash": "page1"})
    assert r.status_code == 200, r.text[:300]
    box, chat = r.json()["data"][:2]
    status, output = _join(http, live.fn_index("add_reply"), [chat, None, None], "page1")
    assert status == 200 and box == ""
    assert "qa-answer" in json.dumps(output[0][len(chat):], ensure_ascii=False)


# ----------------------------------------------------------------------------- the workbench: its handlers and downloads


def _component_value(live, elem_id: str):
    import httpx

    config = httpx.get(live.url + "/config", timeout=TIMEOUT).json()
    return next(c["props"]["value"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)


def test_a_generated_download_is_served(live, http):
    csv = _component_value(live, "qa-csv")
    assert is_download(csv["path"], str(live.temp))
    r = http.get(f"/gradio_api/file={csv['path']}")
    assert r.status_code == 200 and r.content.decode("utf-8-sig").startswith("指标,"), r.text[:200]


def test_the_file_route_serves_no_other_file(live, http, tmp_path):
    other = live.temp / "0123abcd" / "notes.txt"  # in Gradio's folder, but not a download the app wrote
    other.parent.mkdir(exist_ok=True)
    other.write_text("secret")
    outside = tmp_path / "0123abcd" / "figures-0123456789ab.csv"  # a download's name, outside Gradio's folder
    outside.parent.mkdir()
    outside.write_text("secret")
    csv = _component_value(live, "qa-csv")["path"]
    for path in (other, outside, f"{live.temp}/0123abcd/%2E%2E/{csv[len(str(live.temp)) + 1:]}",  # dots encoded: httpx would drop ".."
                 "http://127.0.0.1:1/figures-0123456789ab.csv", "figures-0123456789ab.csv"):
        _assert_error(http.get(f"/gradio_api/file={path}"), 404)


def test_a_page_text_input_over_its_limit_is_refused(live, http):
    status, r = _join(http, live.fn_index("on_find"), ["海" * 101], "find-long")
    _assert_error(r, 422, "limit of 100")


def test_a_value_sent_for_state_the_server_keeps_is_refused(live, http):
    status, r = _join(http, live.fn_index("export_file"), [[{"answer": "forged"}]], "forged-state")
    _assert_error(r, 422, "kept by the server")


def test_a_dropdown_value_outside_its_choices_is_refused(live, http):
    status, r = _join(http, live.fn_index("on_filter"), ["", "<b>x</b>", "全部", "全部", "文中顺序"], "bad-choice")
    _assert_error(r, 422, "not one of the choices")
    status, output = _join(http, live.fn_index("on_filter"), ["地区生产总值", "目标", "全部", "全部", "文中顺序"], "good-choice")
    assert status == 200 and "共 " in output[0]


@pytest.mark.parametrize("event_data", [None, {"index": 1}, [1, 2]], ids=["none", "no-value", "a-list"])
def test_a_like_without_its_event_data_is_refused(live, http, event_data):
    r = http.post("/gradio_api/queue/join", json={"data": [None, None], "fn_index": live.fn_index("on_like"),
                                                   "session_hash": "like1", "event_data": event_data})
    _assert_error(r, 422, "event_data")


def test_a_page_only_script_is_not_a_handler(live, http):
    import httpx

    config = httpx.get(live.url + "/config", timeout=TIMEOUT).json()
    script = next(d["id"] for d in config["dependencies"] if not d.get("backend_fn"))
    _assert_error(http.post("/gradio_api/queue/join", json={"data": [], "fn_index": script, "session_hash": "js1"}), 404)


def test_a_like_on_a_reply_works_the_way_the_page_does_it(live, http):
    r = http.post("/gradio_api/run/predict", json={"data": ["2024年新增就业多少人？", [], None],
                                                   "fn_index": live.fn_index("add_user"), "session_hash": "like2"})
    chat = r.json()["data"][1]
    status, output = _join(http, live.fn_index("add_reply"), [chat, None, None], "like2")
    assert status == 200
    r = http.post("/gradio_api/queue/join", json={"data": [None, None], "fn_index": live.fn_index("on_like"),
                                                   "session_hash": "like2", "trigger_id": None,
                                                   "event_data": {"index": len(output[0]) - 1, "value": "…", "liked": True}})
    assert r.status_code == 200, r.text[:300]
    done = [json.loads(d) for _, d in _sse(http, "/gradio_api/queue/data", ("process_completed",), {"session_hash": "like2"})]
    result = [m for m in done if m.get("msg") == "process_completed"][-1]
    assert result["success"] and "已记录" in json.dumps(result["output"]["data"], ensure_ascii=False)


# ----------------------------------------------------------------------------- 4 and 7: the /ask route's inputs


def test_ask_with_only_the_question_answers_with_five_passages(http):
    event, answer = _ask_call(http, {"data": ["2024年地区生产总值是多少？"]})
    assert event == "complete" and len(answer["passages"]) == 5


def test_ask_v2_with_named_inputs_answers(http):
    event, answer = _ask_call(http, {"question": "2024年地区生产总值是多少？", "k": 2}, route="/gradio_api/call/v2/ask")
    assert event == "complete" and len(answer["passages"]) == 2


def test_ask_v2_without_a_question_is_refused_naming_it(http):
    _assert_error(http.post("/gradio_api/call/v2/ask", json={}), 422, "question")


@pytest.mark.parametrize("body, needle", [
    pytest.param({"data": [42]}, "question must be a string", id="question-int"),
    pytest.param({"data": [""]}, "question is empty", id="question-empty"),
    pytest.param({"data": ["海" * 2001]}, "limit is 2,000", id="question-too-long"),
    pytest.param({"data": []}, "question is missing", id="no-inputs"),
    pytest.param({"data": ["x", 0]}, "k must be", id="k-zero"),
    pytest.param({"data": ["x", "5"]}, "k must be", id="k-string"),
    pytest.param({"data": ["x", True]}, "k must be", id="k-bool"),
    pytest.param({"data": ["x", 10**12]}, "k must be", id="k-huge"),
    pytest.param({"data": ["x", 5, 6]}, "at most 2", id="three-inputs"),
    pytest.param({"data": "x"}, '"data" must be a list', id="data-a-string"),
    pytest.param({"question": "x"}, '"data" must be a list', id="no-data"),
    pytest.param(["x"], "JSON object", id="a-list"),
])
def test_malformed_ask_input_is_refused_before_the_queue_in_one_format(http, body, needle):
    _assert_error(http.post("/gradio_api/call/ask", json=body), 422, needle)


@pytest.mark.parametrize("raw", [b"not json", b"[" * 100_000, b'{"data": ["\xff\xfe"]}', b""],
                         ids=["text", "nested-100k-deep", "not-utf8", "empty"])
def test_a_body_that_is_not_json_is_refused_in_one_format(http, raw):
    r = http.post("/gradio_api/call/ask", content=raw, headers={"Content-Type": "application/json"})
    _assert_error(r, 422, "not JSON")


def test_gradio_client_gets_the_reason_for_a_refused_question(live):
    from gradio_client import Client

    client = Client(live.url, verbose=False, analytics_enabled=False, download_files=False)
    try:
        with pytest.raises(Exception, match="question is empty"):
            client.predict("   ", 5, api_name="/ask")
        assert len(client.predict("2024年地区生产总值是多少？", api_name="/ask")["passages"]) == 5
    finally:
        client.close()


@pytest.mark.parametrize("method, path", [
    ("GET", "/gradio_api/file=/etc/hostname"),
    ("GET", "/gradio_api/file=../../../../etc/hostname"),
    ("GET", "/gradio_api/proxy=http://127.0.0.1:1/"),
    ("GET", "/gradio_api/runs"),
    ("GET", "/gradio_api/run-history/buckets"),
    ("GET", "/gradio_api/openapi.json"),
    ("GET", "/gradio_api/dev/reload"),
    ("GET", "/gradio_api/upload_progress"),
    ("GET", "/monitoring"),
    ("POST", "/gradio_api/component_server"),
    ("POST", "/gradio_api/vibe-edit"),
    ("POST", "/login"),
    ("PUT", "/gradio_api/call/ask"),
])
def test_gradio_routes_the_app_does_not_use_are_closed(http, method, path):
    r = http.request(method, path, json={} if method != "GET" else None)
    assert r.status_code in (404, 405), (r.status_code, r.text[:300])
    _assert_error(r, r.status_code)


# ----------------------------------------------------------------------------- soak

SOAK_REQUESTS = 2000
SOAK_CLIENTS = 16
SOAK_DEADLINE_S = 240  # a bound on the whole soak (it takes ~40 s on 2 cores): no new request after it
P95_LIMIT_S = 2.0  # the bound for normal questions while hostile requests run
RSS_GROWTH_LIMIT_MIB = 120  # generous: 2,000 requests grow it ~50 MiB; keeping 10,000 sessions (Gradio default) grew it 160


def _hostile_requests(live) -> list:
    """Each takes an httpx client and returns (responses, expected status or None for "any non-5xx")."""
    big = b" " * (MAX_BODY_BYTES + 10)
    ask, find, filt = live.fn_index("ask"), live.fn_index("on_find"), live.fn_index("on_filter")

    def post(path, **kw):
        return lambda c: c.post(path, **kw)

    def abandon(c):  # join the queue and never read the result
        return c.post("/gradio_api/queue/join", json={"data": ["2024年新增就业多少人？", 5], "fn_index": ask,
                                                       "session_hash": f"gone{time.monotonic_ns()}"})

    def chunked(c):
        return c.post("/gradio_api/queue/join", content=iter([big[:2**20]] * 3), headers={"Content-Type": "application/json"})

    return [
        (post("/gradio_api/queue/join", content=big, headers={"Content-Type": "application/json"}), 413),
        (chunked, 413),
        (post("/gradio_api/upload", files={"files": ("x.bin", b"\0" * 65536)}), 404),
        (post("/gradio_api/call/add_reply", json={"data": [[]]}), 404),
        (post("/gradio_api/call/v2/ask", json={}), 422),
        (post("/gradio_api/call/ask", json={"data": [42]}), 422),
        (post("/gradio_api/call/ask", json={"data": ["海" * 5000]}), 422),
        (post("/gradio_api/call/ask", json={"data": ["x", 10**9]}), 422),
        (post("/gradio_api/call/ask", content=b"[" * 50_000, headers={"Content-Type": "application/json"}), 422),
        (post("/gradio_api/call/ask", content=b"\xff\xfe", headers={"Content-Type": "application/json"}), 422),
        (post("/gradio_api/queue/join", json={"data": [], "fn_index": 9999, "session_hash": "h"}), 404),
        (post("/gradio_api/queue/join", json={"data": ["x", 5], "fn_index": ask}), 422),
        (post("/gradio_api/run/predict", json={"data": [5, 5, None], "fn_index": live.fn_index("add_user")}), 422),
        (post("/gradio_api/queue/join", json={"data": ["海" * 5000], "fn_index": find, "session_hash": "h"}), 422),
        (post("/gradio_api/queue/join", json={"data": ["", "x", "全部", "全部", "文中顺序"], "fn_index": filt,
                                               "session_hash": "h"}), 422),
        (post("/gradio_api/queue/join", json={"data": [[{"answer": 1}]], "fn_index": live.fn_index("export_file"),
                                               "session_hash": "h"}), 422),
        (post("/gradio_api/queue/join", json={"data": [None, None], "fn_index": live.fn_index("on_like"),
                                               "session_hash": "h", "event_data": None}), 422),
        (lambda c: c.get(f"/gradio_api/file={live.temp}/x/%2E%2E/%2E%2E/server.log"), 404),
        (lambda c: c.post("/gradio_api/queue/join", json={  # a normal filter, results never read: writes a CSV
            "data": [str(time.monotonic_ns() % 97), "全部", "全部", "全部", "文中顺序"], "fn_index": filt,
            "session_hash": f"f{time.monotonic_ns()}"}), 200),
        (post("/gradio_api/call/ask", json={"data": ["x"]}, headers={"Origin": "http://evil.example"}), 403),
        (lambda c: c.get("/gradio_api/file=/etc/passwd"), 404),
        (lambda c: c.get("/gradio_api/run-history/buckets"), 404),
        (abandon, 200),
        (post("/gradio_api/call/ask", content=json.dumps({"data": ["<script>alert(1)</script>\ud800 2024年GDP"]}),
              headers={"Content-Type": "application/json"}), 200),  # a lone surrogate, as JSON allows
    ]


def _normal_questions() -> list[str]:
    lines = (ROOT / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["question"] for line in lines[:64]]


def test_soak_mixed_traffic_keeps_normal_questions_fast_and_memory_bounded(live):
    import httpx
    import psutil

    proc = psutil.Process(live.proc.pid)
    hostile = _hostile_requests(live)
    questions = _normal_questions()
    reply_fn = live.fn_index("add_reply")
    huge_history = [*_chat(150, pad=700), _message("user", "那2025年呢？")]  # ~0.7 MB
    huge_body = _join_body(reply_fn, [huge_history, None, None])  # encoded once: the clients share the machine's 2 cores

    # One request in twenty: 10 normal, 7 hostile, 3 huge histories (the mix the issue names).
    plan = [("normal", "normal", "hostile", "normal", "hostile", "huge", "normal", "hostile", "normal", "normal",
             "hostile", "normal", "huge", "hostile", "normal", "hostile", "normal", "huge", "hostile", "normal")[i % 20]
            for i in range(SOAK_REQUESTS)]
    lock = threading.Lock()
    next_job = iter(range(SOAK_REQUESTS))
    statuses: dict[int, int] = {}
    normal_latency: list[float] = []
    problems: list[str] = []

    def record(kind: str, response, expected: int | None) -> None:
        text = response.text if not getattr(response, "is_stream_consumed", False) else ""
        with lock:
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500 or "Traceback" in text:
                problems.append(f"{kind}: {response.status_code} {text[:200]}")
            elif expected is not None and response.status_code != expected:
                problems.append(f"{kind}: expected {expected}, got {response.status_code} {text[:200]}")
            elif response.status_code >= 400 and not isinstance(response.json().get("error"), str):
                problems.append(f"{kind}: error without the JSON format: {text[:200]}")

    def worker(w: int) -> None:
        with httpx.Client(base_url=live.url, timeout=TIMEOUT) as c:
            while time.monotonic() < deadline:
                with lock:
                    i = next(next_job, None)
                if i is None:
                    return
                kind = plan[i]
                try:
                    if kind == "normal":
                        t = time.perf_counter()
                        r = c.post("/gradio_api/call/ask", json={"data": [questions[i % len(questions)], 5]})
                        record(kind, r, 200)
                        events = _sse(c, f"/gradio_api/call/ask/{r.json()['event_id']}", ("complete", "error"))
                        with lock:
                            normal_latency.append(time.perf_counter() - t)
                            if events[-1][0] != "complete" or "Traceback" in events[-1][1]:
                                problems.append(f"normal: {events[-1]}")
                    elif kind == "huge":
                        status, out = _join(c, reply_fn, huge_body, f"huge{w}x{i}")
                        with lock:
                            statuses[status] = statuses.get(status, 0) + 1
                            if status != 200 or sum(m["role"] == "user" for m in out[0]) > CHAT_TURNS_KEPT:
                                problems.append(f"huge: {status} {str(out)[:200]}")
                    else:
                        send, expected = hostile[i % len(hostile)]
                        record(f"hostile #{i % len(hostile)}", send(c), expected)
                except Exception as exc:  # collected: the assertion below shows the first few
                    with lock:
                        problems.append(f"{kind} #{i}: {type(exc).__name__}: {exc}")

    samples: list[int] = []
    done = threading.Event()

    def sample_rss() -> None:
        while not done.is_set():
            samples.append(proc.memory_info().rss)
            time.sleep(0.2)

    # Warm up (first calls import and allocate), then take the baseline.
    with httpx.Client(base_url=live.url, timeout=TIMEOUT) as c:
        for q in questions[:8]:
            _ask_call(c, {"data": [q, 5]})
        _join(c, reply_fn, [huge_history, None, None], "warm-huge")
    rss_before = proc.memory_info().rss

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    deadline = time.monotonic() + SOAK_DEADLINE_S
    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(SOAK_CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline + TIMEOUT - time.monotonic()))
    wall = time.perf_counter() - t0
    done.set()
    sampler.join(timeout=5)
    rss_after = proc.memory_info().rss
    assert not any(t.is_alive() for t in threads), "a client hung"

    lat = sorted(normal_latency) or [float("nan")]
    p50, p95 = lat[len(lat) // 2], lat[int(0.95 * (len(lat) - 1))]
    mib = 2**20
    growth = (max(samples + [rss_after]) - rss_before) / mib
    print(f"\nsoak: {SOAK_REQUESTS} requests ({plan.count('normal')} normal, {plan.count('hostile')} hostile, "
          f"{plan.count('huge')} huge histories) from {SOAK_CLIENTS} clients in {wall:.1f}s; statuses "
          f"{dict(sorted(statuses.items()))}; normal p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms; server RSS "
          f"{rss_before / mib:.0f} MiB before, {max(samples) / mib:.0f} MiB peak, {rss_after / mib:.0f} MiB after "
          f"(growth {growth:.0f} MiB, limit {RSS_GROWTH_LIMIT_MIB})")

    assert not problems, problems[:5]
    assert len(lat) == plan.count("normal"), f"only {len(lat)} normal questions answered in {SOAK_DEADLINE_S}s"
    assert not any(s >= 500 for s in statuses), statuses
    assert p95 < P95_LIMIT_S, f"normal questions' p95 {p95:.2f}s while hostile requests ran"
    assert growth < RSS_GROWTH_LIMIT_MIB, f"server RSS grew {growth:.0f} MiB"
    log = live.log.read_text(errors="replace")
    assert not re.search(r"Traceback", log), log[log.find("Traceback") - 200:][:3000]
