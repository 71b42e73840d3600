"""Every route of the labeling API through LabelingApi.handle (docs/labeling-api.md)."""

from __future__ import annotations

import json

import pytest

from boxloop.labeling import ApiRequest, JournalStore

from ._helpers import TOKEN, box, harness


def test_config_needs_no_token(tmp_path):
    h = harness(tmp_path)
    response = h.call("GET", "/config.json", token=None, worker=None)
    assert response.status == 200
    assert response.body == {"api": "/api/v1", "auth": "token", "cognito": None}


@pytest.mark.parametrize("token", [None, "wrong" * 8, TOKEN + "x"])
def test_every_api_route_refuses_a_wrong_or_missing_token(tmp_path, token):
    h = harness(tmp_path)
    for method, path in [
        ("GET", "/session"),
        ("POST", "/worker"),
        ("POST", "/tasks/next"),
        ("GET", "/tasks/rec0"),
        ("POST", "/tasks/rec0/submit"),
        ("POST", "/tasks/rec0/release"),
    ]:
        response = h.call(method, path, {}, token=token)
        assert response.status == 401, (method, path)
        assert response.body["error"]["code"] == "unauthorized"


def test_worker_header_is_required(tmp_path):
    h = harness(tmp_path)
    response = h.call("GET", "/session", worker=None)
    assert response.status == 400
    assert response.body["error"]["field"] == "X-Boxloop-Worker"
    assert h.call("GET", "/session", worker="../etc").status == 400


def test_session_and_worker_name(tmp_path):
    h = harness(tmp_path)
    session = h.call("GET", "/session").body
    assert session["mode"] == "label"
    assert session["job"]["classes"] == [{"id": 0, "name": "car"}, {"id": 1, "name": "person"}]
    assert session["job"]["counts"] == {"total": 3, "done": 0, "left": 3, "leased": 0}
    assert session["worker"] == {"id": "w1", "name": None}
    assert h.call("POST", "/worker", {"name": "  Ada "}).body == {
        "worker": {"id": "w1", "name": "Ada"}
    }
    assert h.call("POST", "/worker", {"name": ""}).status == 400
    assert h.call("GET", "/session").body["worker"]["name"] == "Ada"
    # The name survives a restart: it is journaled.
    h.store.close()
    assert JournalStore(h.store.path).worker_name("w1") == "Ada"


def test_next_gives_different_images_to_different_workers_and_renews_own_lease(tmp_path):
    h = harness(tmp_path)
    a = h.call("POST", "/tasks/next", worker="a").body["task"]
    b = h.call("POST", "/tasks/next", worker="b").body["task"]
    assert a["task_id"] != b["task_id"]
    again = h.call("POST", "/tasks/next", worker="a").body["task"]
    assert again["task_id"] == a["task_id"] and again["lease_id"] == a["lease_id"]
    c = h.call("POST", "/tasks/next", worker="c").body["task"]
    assert h.call("POST", "/tasks/next", worker="d").body == {"task": None, "reason": "all-leased"}
    assert {a["task_id"], b["task_id"], c["task_id"]} == {"rec0", "rec1", "rec2"}
    assert h.call("GET", "/session").body["job"]["counts"]["leased"] == 3


def test_preannotations_only_where_the_task_has_them(tmp_path):
    h = harness(tmp_path)
    tasks = {}
    for worker in ("a", "b", "c"):
        task = h.call("POST", "/tasks/next", worker=worker).body["task"]
        tasks[task["task_id"]] = task
    assert tasks["rec0"]["role"] == "validation" and tasks["rec0"]["preannotations"] == []
    assert tasks["rec1"]["preannotations"] == [
        {"class_id": 0, "left": 1, "top": 2, "width": 10, "height": 12, "score": 0.9}
    ]
    assert tasks["rec1"]["width"] == 64 and tasks["rec1"]["height"] == 48


def test_submit_records_once_and_duplicate_is_idempotent(tmp_path):
    h = harness(tmp_path, n=2)
    task = h.call("POST", "/tasks/next").body["task"]
    body = {
        "lease_id": task["lease_id"],
        "boxes": [box()],
        "no_objects": False,
        "effort": {"seconds": 7.5, "boxes_drawn": 1},
    }
    first = h.call("POST", f"/tasks/{task['task_id']}/submit", body)
    assert first.status == 200, first.body
    assert first.body["accepted"] and not first.body["duplicate"]
    assert first.body["counts"] == {"total": 2, "done": 1, "left": 1, "leased": 0}
    second = h.call("POST", f"/tasks/{task['task_id']}/submit", body)
    assert second.status == 200 and second.body["duplicate"]
    lines = h.store.path.read_text().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["kind"] == "answer" and line["task_id"] == task["task_id"]
    assert line["effort"]["seconds"] == 7.5 and line["effort"]["boxes_drawn"] == 1
    # A changed answer by the same worker replaces the earlier one (no lease needed).
    body["boxes"] = [box(), box(1, left=30)]
    changed = h.call("POST", f"/tasks/{task['task_id']}/submit", {**body, "lease_id": None})
    assert changed.status == 200 and not changed.body["duplicate"]
    answers = h.store.answers(task["task_id"])
    assert len(answers) == 1 and len(answers[0].boxes) == 2
    # GET the task again ("previous"): the worker's own answer comes back.
    again = h.call("GET", f"/tasks/{task['task_id']}").body
    assert len(again["answer"]["boxes"]) == 2 and again["lease_id"] is None
    # Nobody else's task can be read.
    assert h.call("GET", f"/tasks/{task['task_id']}", worker="other").status == 404


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (box(class_id=7), "boxes[0].class_id"),
        (box(width=0), "boxes[0].width"),
        (box(height=-3), "boxes[0].height"),
        (box(left=-5), "boxes[0].left"),
        (box(top=-2), "boxes[0].top"),
        (box(left=50, width=20), "boxes[0].width"),
        (box(top=40, height=20), "boxes[0].height"),
        ({**box(), "left": "7"}, "boxes[0].left"),
        ({**box(), "left": float("nan")}, "boxes[0].left"),
        ({**box(), "origin": "robot"}, "boxes[0].origin"),
        ("not a box", "boxes[0]"),
    ],
)
def test_bad_boxes_are_refused_with_the_field(tmp_path, bad, field):
    h = harness(tmp_path)
    task = h.call("POST", "/tasks/next").body["task"]
    response = h.call(
        "POST", f"/tasks/{task['task_id']}/submit", {"lease_id": task["lease_id"], "boxes": [bad]}
    )
    assert response.status == 400, response.body
    assert response.body["error"]["code"] == "bad_box"
    assert response.body["error"]["field"] == field
    assert (
        task["task_id"] in response.body["error"]["message"]
        or "img" in (response.body["error"]["message"])
    )
    assert not h.store.path.read_text()


def test_half_pixel_past_the_edge_is_clipped(tmp_path):
    h = harness(tmp_path)
    task = h.call("POST", "/tasks/next").body["task"]
    body = {"lease_id": task["lease_id"], "boxes": [box(left=44.3, width=20)]}
    assert h.call("POST", f"/tasks/{task['task_id']}/submit", body).status == 200
    (answer,) = h.store.answers(task["task_id"])
    assert answer.boxes[0].left + answer.boxes[0].width == 64


def test_empty_answer_needs_no_objects(tmp_path):
    h = harness(tmp_path)
    task = h.call("POST", "/tasks/next").body["task"]
    url = f"/tasks/{task['task_id']}/submit"
    empty = h.call("POST", url, {"lease_id": task["lease_id"], "boxes": []})
    assert empty.status == 400 and empty.body["error"]["field"] == "no_objects"
    both = h.call("POST", url, {"lease_id": task["lease_id"], "boxes": [box()], "no_objects": True})
    assert both.status == 400 and both.body["error"]["field"] == "no_objects"
    ok = h.call("POST", url, {"lease_id": task["lease_id"], "boxes": [], "no_objects": True})
    assert ok.status == 200
    assert h.store.answers(task["task_id"])[0].no_objects


def test_bad_bodies(tmp_path):
    h = harness(tmp_path)
    task = h.call("POST", "/tasks/next").body["task"]
    url = f"/tasks/{task['task_id']}/submit"
    assert h.call("POST", url, [1, 2]).status == 400
    assert h.call("POST", url, {"lease_id": task["lease_id"]}).body["error"]["field"] == "boxes"
    bad_effort = {"lease_id": task["lease_id"], "boxes": [box()], "effort": {"seconds": -1}}
    assert h.call("POST", url, bad_effort).body["error"]["field"] == "effort.seconds"
    many = {"lease_id": task["lease_id"], "boxes": [box()] * 501}
    assert h.call("POST", url, many).body["error"]["field"] == "boxes"


def test_effort_seconds_capped_at_the_lease(tmp_path):
    h = harness(tmp_path, lease_s=60)
    task = h.call("POST", "/tasks/next").body["task"]
    body = {"lease_id": task["lease_id"], "boxes": [box()], "effort": {"seconds": 3600}}
    assert h.call("POST", f"/tasks/{task['task_id']}/submit", body).status == 200
    assert h.store.answers(task["task_id"])[0].effort["seconds"] == 60


def test_expired_lease_goes_to_someone_else(tmp_path):
    h = harness(tmp_path, n=1, lease_s=60)
    a = h.call("POST", "/tasks/next", worker="a").body["task"]
    assert h.call("POST", "/tasks/next", worker="b").body["reason"] == "all-leased"
    h.clock.now += 61
    b = h.call("POST", "/tasks/next", worker="b").body["task"]
    assert b["task_id"] == a["task_id"] and b["lease_id"] != a["lease_id"]
    late = h.call(
        "POST",
        f"/tasks/{a['task_id']}/submit",
        {"lease_id": a["lease_id"], "boxes": [box()]},
        worker="a",
    )
    assert late.status == 410 and late.body["error"]["code"] == "lease_expired"
    ok = h.call(
        "POST",
        f"/tasks/{b['task_id']}/submit",
        {"lease_id": b["lease_id"], "boxes": [box()]},
        worker="b",
    )
    assert ok.status == 200
    assert [x.worker_id for x in h.store.answers(a["task_id"])] == ["b"]


def test_expired_lease_still_accepted_while_nobody_took_the_image(tmp_path):
    h = harness(tmp_path, n=1, lease_s=60)
    a = h.call("POST", "/tasks/next", worker="a").body["task"]
    h.clock.now += 3600
    late = h.call(
        "POST",
        f"/tasks/{a['task_id']}/submit",
        {"lease_id": a["lease_id"], "boxes": [box()]},
        worker="a",
    )
    assert late.status == 200


def test_release_returns_the_image(tmp_path):
    h = harness(tmp_path, n=1)
    a = h.call("POST", "/tasks/next", worker="a").body["task"]
    assert (
        h.call("POST", f"/tasks/{a['task_id']}/release", {"lease_id": "nope"}, worker="a").body[
            "released"
        ]
        is False
    )
    released = h.call(
        "POST", f"/tasks/{a['task_id']}/release", {"lease_id": a["lease_id"]}, worker="a"
    )
    assert released.body["released"] is True and released.body["counts"]["leased"] == 0
    assert h.call("POST", "/tasks/next", worker="b").body["task"]["task_id"] == a["task_id"]


def test_workers_per_object_two_different_workers(tmp_path):
    h = harness(tmp_path, n=1, workers_per_object=2)
    a = h.call("POST", "/tasks/next", worker="a").body["task"]
    b = h.call("POST", "/tasks/next", worker="b").body["task"]
    assert a["task_id"] == b["task_id"] == "rec0"
    assert h.call("POST", "/tasks/next", worker="c").body["reason"] == "all-leased"
    h.call("POST", "/tasks/rec0/submit", {"lease_id": a["lease_id"], "boxes": [box()]}, worker="a")
    # The same worker is never given the image twice: nothing is left for it.
    assert h.call("POST", "/tasks/next", worker="a").body["reason"] == "done"
    assert h.call("GET", "/session").body["job"]["counts"]["done"] == 0
    h.call("POST", "/tasks/rec0/submit", {"lease_id": b["lease_id"], "boxes": [box()]}, worker="b")
    assert h.call("GET", "/session").body["job"]["counts"]["done"] == 1
    assert h.call("POST", "/tasks/next", worker="c").body["reason"] == "done"


def test_closed_job_refuses_answers(tmp_path):
    h = harness(tmp_path, n=1)
    a = h.call("POST", "/tasks/next").body["task"]
    h.call("POST", "/tasks/rec0/submit", {"lease_id": a["lease_id"], "boxes": [box()]})
    h.store.close_job("job-1")
    again = h.call("POST", "/tasks/rec0/submit", {"lease_id": None, "boxes": [box(), box()]})
    assert again.status == 409 and again.body["error"]["code"] == "job_closed"
    assert h.call("POST", "/tasks/next").body == {"task": None, "reason": "no-job"}
    assert h.call("GET", "/session").body["job"] is None


def test_a_task_held_when_its_job_closed_is_job_closed_with_the_reason(tmp_path):
    # GIVEN a worker holding an image when its job closes (the others answered it, or the
    # deadline passed)
    h = harness(tmp_path, n=2)
    held = h.call("POST", "/tasks/next", worker="slow").body["task"]
    h.store.close_job("job-1")
    # WHEN the worker submits with its lease
    late = h.call(
        "POST",
        f"/tasks/{held['task_id']}/submit",
        {"lease_id": held["lease_id"], "boxes": [box()]},
        worker="slow",
    )
    # THEN 409 job_closed says the job closed and the answer was not needed; nothing is kept
    assert late.status == 409 and late.body["error"]["code"] == "job_closed"
    assert f"job of image {held['task_id']} has closed" in late.body["error"]["message"]
    assert "not needed" in late.body["error"]["message"]
    assert h.store.answers(held["task_id"]) == []
    # AND a submit without a lease for a task of no open job is still 404 not_found
    unknown = h.call("POST", f"/tasks/{held['task_id']}/submit", {"boxes": [box()]}, worker="x")
    assert unknown.status == 404 and unknown.body["error"]["code"] == "not_found"


def test_signed_image_route(tmp_path):
    h = harness(tmp_path)
    task = h.call("POST", "/tasks/next").body["task"]
    path, _, query = task["image_url"].partition("?")
    params = dict(p.split("=") for p in query.split("&"))
    assert path == f"/api/v1/images/{task['task_id']}"
    ok = h.api.handle(ApiRequest(method="GET", path=path, query=params))
    assert ok.status == 200 and ok.file == h.tasks[0].image and ok.content_type == "image/png"
    bad = h.call("GET", path[len("/api/v1") :], query={**params, "sig": "0" * 64}, token=None)
    assert bad.status == 403
    other = h.call("GET", "/images/rec2", query=params, token=None)
    assert other.status == 403  # a signature is for one task only
    h.clock.now += 3601
    expired = h.call("GET", path[len("/api/v1") :], query=params, token=None)
    assert expired.status == 403 and expired.body["error"]["field"] == "exp"


@pytest.mark.parametrize(
    "path", ["/images/..%2F..%2Fetc%2Fpasswd", "/images/../../etc/passwd", "/tasks/../x/submit"]
)
def test_no_path_reaches_a_file(tmp_path, path):
    h = harness(tmp_path)
    response = h.call("GET", path, query={"exp": "9999999999", "sig": "x"})
    assert response.status == 404 and response.file is None


def test_unknown_route_and_method(tmp_path):
    h = harness(tmp_path)
    assert h.call("GET", "/nope").status == 404
    assert h.call("DELETE", "/session").status == 405


def test_an_answer_for_another_image_size_is_not_reused(tmp_path):
    import dataclasses

    from boxloop.labeling import JobInfo

    h = harness(tmp_path, n=1)
    task = h.call("POST", "/tasks/next").body["task"]
    assert (
        h.call(
            "POST", "/tasks/rec0/submit", {"lease_id": task["lease_id"], "boxes": [box()]}
        ).status
        == 200
    )
    h.store.close()
    # A later run: the file behind the same record id is now another image (another size).
    store = JournalStore(h.store.path)
    bigger = dataclasses.replace(h.tasks[0], width=128)
    store.open_job(JobInfo(name="job-2", classes={0: "car"}), [bigger])
    assert store.counts(0.0).done == 0 and store.answers("rec0") == []
    same = JournalStore(h.store.path)
    same.open_job(JobInfo(name="job-3", classes={0: "car"}), [h.tasks[0]])
    assert same.counts(0.0).done == 1
