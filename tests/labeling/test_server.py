"""The labeling API through the real local HTTP server (urllib / http.client)."""

from __future__ import annotations

import http.client
import json

import pytest

from boxloop.local.labeling_server import LabelingServer, host_allowed

from ._client import Labeler
from ._helpers import TOKEN, box, harness


@pytest.fixture
def served(tmp_path):
    h = harness(tmp_path)
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>boxloop</title>")
    (static / "app.js").write_text("console.log('hi')")
    (tmp_path / "secret.txt").write_text("do not serve")
    server = LabelingServer(h.api, static_dir=static).start()
    try:
        yield h, server, Labeler(server.url(TOKEN))
    finally:
        server.stop()


def _raw(server, method, path, *, host=None, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", f"127.0.0.1:{server.port}" if host is None else host)
    for name, value in (headers or {}).items():
        conn.putheader(name, value)
    if (body or method == "POST") and "Content-Length" not in (headers or {}):
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body or None)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data, response


def test_url_carries_the_token_in_the_fragment(served):
    _, server, _ = served
    assert server.url(TOKEN) == f"http://127.0.0.1:{server.port}/#token={TOKEN}"
    assert server.port > 0


def test_label_an_image_over_http(served):
    h, _, labeler = served
    status, session = labeler.request("GET", "/api/v1/session")
    assert status == 200 and session["job"]["counts"]["total"] == 3
    task, _ = labeler.next_task()
    status, image = labeler.request("GET", task["image_url"])
    assert status == 200 and image.startswith(b"\x89PNG")
    status, body = labeler.submit(task, [box()])
    assert status == 200 and body["accepted"]
    assert h.store.answers(task["task_id"])[0].boxes[0].width == 20


def test_wrong_token_is_401(served):
    _, _, labeler = served
    status, body = labeler.request("GET", "/api/v1/session", token="x" * 32)
    assert status == 401 and body["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1:1", "localhost", ""])
def test_wrong_host_is_421(served, host):
    _, server, _ = served
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Boxloop-Worker": "w1"}
    status, data, _ = _raw(
        server, "GET", "/api/v1/session", host=host.format(port=server.port), headers=headers
    )
    assert status == 421, data
    assert json.loads(data)["error"]["code"] == "bad_host"


def test_host_rule():
    assert host_allowed("127.0.0.1:8000", "127.0.0.1", 8000)
    assert host_allowed("localhost:8000", "127.0.0.1", 8000)
    assert host_allowed("[::1]:8000", "::1", 8000)
    assert host_allowed("192.168.1.5:8000", "0.0.0.0", 8000)
    assert not host_allowed("rebind.attacker.example:8000", "0.0.0.0", 8000)
    assert not host_allowed("127.0.0.1:8001", "127.0.0.1", 8000)


@pytest.mark.parametrize(
    "path",
    [
        "/static/../secret.txt",
        "/static/..%2Fsecret.txt",
        "/static/%2e%2e/secret.txt",
        "/static//etc/passwd",
        "/../secret.txt",
        "/secret.txt",
        "/static/",
    ],
)
def test_path_traversal_serves_nothing(served, path):
    _, server, _ = served
    status, data, _ = _raw(server, "GET", path)
    assert status == 404, (path, data)
    assert b"do not serve" not in data


def test_static_app_and_security_headers(served):
    _, server, _ = served
    status, data, response = _raw(server, "GET", "/")
    assert status == 200 and b"boxloop" in data
    assert response.getheader("Content-Type").startswith("text/html")
    assert "frame-ancestors 'none'" in response.getheader("Content-Security-Policy")
    status, data, response = _raw(server, "GET", "/static/app.js")
    assert status == 200 and "javascript" in response.getheader("Content-Type")
    status, data, _ = _raw(server, "GET", "/config.json")
    assert status == 200 and json.loads(data)["auth"] == "token"


def test_oversized_body_is_413(served):
    _, server, _ = served
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Boxloop-Worker": "w1"}
    # The server answers from the Content-Length alone and never reads the body.
    headers["Content-Length"] = str((1 << 20) + 1)
    status, data, _ = _raw(server, "POST", "/api/v1/tasks/rec0/submit", headers=headers)
    assert status == 413 and json.loads(data)["error"]["code"] == "too_large"


def test_bad_json_is_400(served):
    _, _, labeler = served
    status, body = labeler.request("POST", "/api/v1/tasks/next", raw=b"{nope")
    assert status == 400 and body["error"]["code"] == "bad_request"


def test_bad_box_over_http_names_the_field(served):
    _, _, labeler = served
    task, _ = labeler.next_task()
    status, body = labeler.submit(task, [box(), box(width=500)])
    assert status == 400
    assert body["error"] == {
        "code": "bad_box",
        "message": body["error"]["message"],
        "field": "boxes[1].width",
    }
    assert "64x48" in body["error"]["message"]


def test_image_needs_its_signature(served):
    _, server, labeler = served
    task, _ = labeler.next_task()
    status, _, _ = _raw(server, "GET", f"/api/v1/images/{task['task_id']}")
    assert status == 403


def test_a_server_bug_is_a_json_500(served, monkeypatch):
    h, _, labeler = served

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(h.store, "counts", broken)
    status, body = labeler.request("GET", "/api/v1/session")
    assert status == 500 and body["error"]["code"] == "internal"
    assert labeler.request("POST", "/api/v1/tasks/next", {})[0] == 200  # still serving


def test_duplicate_submit_over_http_is_idempotent(served):
    h, _, labeler = served
    task, _ = labeler.next_task()
    first = labeler.submit(task, [box()])
    second = labeler.submit(task, [box()])
    assert first == (200, {**first[1], "duplicate": False})
    assert second[0] == 200 and second[1]["duplicate"] is True
    assert len(h.store.path.read_text().splitlines()) == 1


def test_expired_lease_over_http(served):
    h, server, labeler = served
    mine, _ = labeler.next_task()
    h.clock.now += 61  # the harness's lease is 60 s: the image goes to the next who asks
    taken, _ = Labeler(server.url(TOKEN), "w3").next_task()
    assert taken["task_id"] == mine["task_id"]
    status, body = labeler.submit(mine, [box()])
    assert status == 410 and body["error"]["code"] == "lease_expired"
    assert Labeler(server.url(TOKEN), "w3").submit(taken, [box()])[0] == 200
