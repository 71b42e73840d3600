"""A scripted labeler: talks to a running labeling server over HTTP, as the page does."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit


class Labeler:
    """One browser: the URL's token, its own worker id."""

    def __init__(self, url: str, worker: str = "w1", *, host: str | None = None) -> None:
        parts = urlsplit(url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.token = parts.fragment.removeprefix("token=")
        self.worker = worker
        self.host = host

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token or self.token}")
        request.add_header("X-Boxloop-Worker", self.worker)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.host:
            request.add_header("Host", self.host)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                payload = response.read()
                kind = response.headers.get("Content-Type", "")
                return response.status, json.loads(payload) if "json" in kind else payload
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                return error.code, json.loads(payload)
            except ValueError:
                return error.code, payload

    def next_task(self) -> tuple[dict[str, Any] | None, str | None]:
        status, body = self.request("POST", "/api/v1/tasks/next", {})
        assert status == 200, body
        return body["task"], body["reason"]

    def submit(self, task: dict[str, Any], boxes: list[dict[str, Any]], **extra: Any):
        body = {"lease_id": task["lease_id"], "boxes": boxes, **extra}
        if not boxes:
            body.setdefault("no_objects", True)
        return self.request("POST", f"/api/v1/tasks/{task['task_id']}/submit", body)
