"""humanLabeling=boxloop end to end on moto: people label every batch in the stack's own app.

The synthesized state machine runs with the stack's Lambdas in process. A scripted labeler
signs in against moto's Cognito, gets an ID token, and works through the API (payload-2.0
events through the template's routes and JWT authorizer, see ``labeling_gateway``): it asks
for the next image, loads it by its presigned URL, and submits the reference boxes. Each
batch's last submit finishes the job and answers the ``LabelInApp`` state's task token.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests
from e2e_harness import ATTR, BUCKET, SMALL_RUN, WorkflowHarness
from e2e_stack import synth_template
from labeling_gateway import Gateway, Pool, create_pool, create_table
from moto import mock_aws
from request_shapes import ServiceRequest, iter_service_requests, request_problems

from boxloop.aws import clients
from boxloop.aws.clients import client
from boxloop.aws.human_labeling import finish_job, sweep
from boxloop.aws.labeling_http import handle_http_event
from boxloop.aws.labeling_store import CLOSED, DynamoTaskStore
from boxloop.aws.s3 import write_text
from boxloop.core.formats.groundtruth import METADATA_SUFFIX
from boxloop.core.manifests import record_id
from boxloop.labeling.api import DEFAULT_LEASE_S
from boxloop.labeling.contract import JobInfo, TaskInfo
from boxloop.local import emulator
from boxloop.local.engine import load_handler

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from boxloop.core.detections import Detections

TABLE = "boxloop-e2e-labeling"
DOMAIN = "d111111abcdef8.cloudfront.net"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synth_template(outdir=tmp_path_factory.mktemp("cdk.out"), human_labeling="boxloop")


class World:
    """Moto with the workflow, the labelers' pool, the task table and the API's gateway."""

    def __init__(
        self, harness: WorkflowHarness, pool: Pool, gateway: Gateway, template: dict[str, Any]
    ) -> None:
        self.harness = harness
        self.gateway_template = template
        self.pool = pool
        self.gateway = gateway
        self.reference: dict[str, Detections] = {
            record_id(uri): d for uri, d in harness.reference.items()
        }

    def store(self) -> DynamoTaskStore:
        return DynamoTaskStore(TABLE)


@pytest.fixture(scope="module")
def world(
    template: dict[str, Any],
    demo_images: dict[Path, Detections],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in CREDENTIALS.items():
            patch.setenv(key, value)
        clients.clear()
        with mock_aws(config=emulator.MOTO_CONFIG):
            emulator.apply(instant_delays=True)
            try:
                create_table(template, TABLE)
                harness = WorkflowHarness(
                    template,
                    demo_images,
                    tmp_path_factory.mktemp("e2e-work"),
                    patch.setenv,
                    stand_ins={
                        ("AWS::DynamoDB::Table", None): TABLE,
                        ("AWS::CloudFront::Distribution", "DomainName"): DOMAIN,
                    },
                )
                pool = create_pool(template)
                gateway = Gateway(template, pool, load_handler("labeling_api"))
                yield World(harness, pool, gateway, template)
            finally:
                emulator.remove()
                clients.clear()


class Labeler(threading.Thread):
    """A person at the page: next image, look at it, draw the reference boxes, submit."""

    def __init__(self, world: World, email: str, *, max_images: int | None = None) -> None:
        super().__init__(daemon=True)
        world.pool.add_labeler(email)
        self.token = world.pool.sign_in(email)
        self.world = world
        self.max_images = max_images
        self.stop = threading.Event()
        self.labeled: list[str] = []
        self.jobs: set[str] = set()
        self.errors: list[Any] = []
        self.images_seen = 0
        self.idle: list[Any] = []

    def submit_body(self, task: dict[str, Any]) -> dict[str, Any]:
        detections = self.world.reference[task["task_id"]]
        boxes = []
        for box in detections.boxes:
            x1, y1, x2, y2 = box.xyxy
            boxes.append(
                {
                    "class_id": box.class_id,
                    "left": x1,
                    "top": y1,
                    "width": x2 - x1,
                    "height": y2 - y1,
                    "origin": "human",
                    "edited": False,
                }
            )
        return {
            "lease_id": task["lease_id"],
            "boxes": boxes,
            "no_objects": not boxes,
            "effort": {"seconds": 2.0, "boxes_drawn": len(boxes)},
        }

    def run(self) -> None:
        gateway = self.world.gateway
        while not self.stop.is_set():
            if self.max_images is not None and len(self.labeled) >= self.max_images:
                time.sleep(0.02)
                continue
            session = gateway.call("GET", "/api/v1/session", self.token)
            if session.status != 200:
                self.errors.append(session)
                return
            if session.body["job"] is None:
                time.sleep(0.02)
                continue
            claimed = gateway.call("POST", "/api/v1/tasks/next", self.token, {})
            task = claimed.body.get("task") if claimed.status == 200 else None
            if task is None:
                self.idle.append(claimed.body.get("reason"))
                time.sleep(0.02)
                continue
            image = requests.get(task["image_url"], timeout=10)  # the presigned URL
            if image.status_code != 200 or not image.content:
                self.errors.append(("image", task["task_id"], image.status_code))
            self.images_seen += 1
            path = f"/api/v1/tasks/{task['task_id']}/submit"
            reply = gateway.call("POST", path, self.token, self.submit_body(task))
            if reply.status != 200:
                self.errors.append(reply)
                continue
            self.labeled.append(task["task_id"])
            self.jobs.add(session.body["job"]["name"])


def _output_lines(uri: str) -> list[dict[str, Any]]:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    body = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def _label_results(run_events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``labeling.result`` of every MergeHumanLabels input, in order."""
    results = []
    for event in run_events:
        details = event.get("stateEnteredEventDetails")
        if details and details["name"] == "MergeHumanLabels":
            results.append(json.loads(details["input"])["labeling"]["result"])
    return results


def _app_labels(run_events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Record id -> output line of every image labeled in the run's app jobs."""
    return {
        line["id"]: line
        for result in _label_results(run_events)
        for line in _output_lines(result["output_manifest"])
        if ATTR in line
    }


WORKERS = 2
"""Each image goes to two different labelers, whose boxes are consolidated."""


def run_with(world: World, name: str, labelers: list[Labeler], **overrides: Any) -> Any:
    """One execution with ``labelers`` at work until it ends."""
    for labeler in labelers:
        labeler.start()
    try:
        return world.harness.run(
            name,
            {
                "manifest": world.harness.input_manifest,
                "overrides": {**SMALL_RUN, "workers_per_object": WORKERS, **overrides},
            },
        )
    finally:
        for labeler in labelers:
            labeler.stop.set()
            labeler.join(timeout=5)


@pytest.fixture(scope="module")
def happy(world: World) -> tuple[Any, list[Labeler]]:
    labelers = [Labeler(world, "ada@example.com"), Labeler(world, "grace@example.com")]
    return run_with(world, "app-happy", labelers), labelers


def test_run_succeeds_with_every_batch_labeled_in_the_app(happy) -> None:
    run, labelers = happy
    assert run.result.status == "SUCCEEDED", f"{run.result.error}: {run.result.cause}"
    assert [labeler.errors for labeler in labelers] == [[], []]
    states = run.result.visited_states
    assert "LabelInApp" in states and "Label" not in states
    assert states.count("LabelInApp") == states.count("MergeHumanLabels") >= 2
    # every image is a human label of the run, answered once by each of the two labelers
    human = _app_labels(run.events)
    for labeler in labelers:
        assert sorted(labeler.labeled) == sorted(set(labeler.labeled)) == sorted(human)
        assert labeler.images_seen == len(labeler.labeled)
    # and the run's output holds them as human labels
    output = run.output_lines()
    assert all(output[rid][ATTR + METADATA_SUFFIX]["human-annotated"] == "yes" for rid in human)


def test_each_job_answers_the_task_token_with_ground_truths_shape(happy) -> None:
    run, labelers = happy
    results = _label_results(run.events)
    assert len(results) == len(labelers[0].jobs) == len(labelers[1].jobs)
    for result in results:
        assert result["status"] == "Completed"
        assert result["counters"]["Unlabeled"] == 0
        lines = _output_lines(result["output_manifest"])
        assert result["counters"]["HumanLabeled"] == len(lines) > 0
        assert all(line[ATTR + METADATA_SUFFIX]["human-annotated"] == "yes" for line in lines)
        assert all(
            line[ATTR + METADATA_SUFFIX]["job-name"].endswith(result["job_name"]) for line in lines
        )
        stats_uri = result["output_manifest"].replace(
            "manifests/output/output.manifest", "boxloop-workforce.json"
        )
        stats = json.loads(
            client("s3")
            .get_object(
                Bucket=stats_uri.removeprefix("s3://").split("/", 1)[0],
                Key=stats_uri.removeprefix("s3://").split("/", 1)[1],
            )["Body"]
            .read()
        )
        assert stats["effort"]["images"] == WORKERS * len(lines)
        assert stats["worker_tasks"] == WORKERS * len(lines)


def test_the_labeled_boxes_are_the_submitted_ones(world: World, happy) -> None:
    run, _ = happy
    for rid, line in _app_labels(run.events).items():
        reference = world.reference[rid]
        got = sorted(
            (a["class_id"], a["left"], a["top"], a["width"], a["height"])
            for a in line[ATTR]["annotations"]
        )
        expected = sorted(
            (
                b.class_id,
                *(round(v) for v in (b.xyxy[0], b.xyxy[1])),
                *(round(v) for v in (b.xyxy[2] - b.xyxy[0], b.xyxy[3] - b.xyxy[1])),
            )
            for b in reference.boxes
        )
        assert got == expected


def test_every_job_is_closed_and_the_page_says_so(world: World, happy) -> None:
    _, (labeler, _) = happy
    store = world.store()
    assert store.open_jobs() == []
    assert all(store.record_of(name).status == CLOSED for name in labeler.jobs)
    session = world.gateway.call("GET", "/api/v1/session", labeler.token)
    assert (session.status, session.body["job"]) == (200, None)


def test_the_label_task_renders_a_valid_lambda_invoke(world: World, happy) -> None:
    run, _ = happy
    invokes = [r for r in iter_service_requests(run.events) if r.state == "LabelInApp"]
    assert invokes
    for request in invokes:
        assert "StartHumanLabeling" in request.params["FunctionName"]
        payload = request.params["Payload"]
        assert set(payload) == {"labeling", "run", "task_token", "execution"}
        as_sent = ServiceRequest(
            state=request.state,
            service="lambda",
            operation="Invoke",
            params={**request.params, "Payload": json.dumps(payload).encode()},
        )
        assert request_problems(as_sent) == []


# --- lifecycle: stop mid-job, deadline ---------------------------------------------------------


def _wait_for(predicate: Any, what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _execution_arn(name: str) -> str:
    return f"arn:aws:states:us-east-1:123456789012:execution:boxloop-e2e:{name}"


def _job_of(world: World, name: str) -> str | None:
    store = world.store()
    for job in store.open_jobs():
        if store.record_of(job).execution == _execution_arn(name):
            return job
    return None


class Background(threading.Thread):
    """``run_with`` on a thread, so the test can act while the execution waits on people."""

    def __init__(self, world: World, name: str, labelers: list[Labeler]) -> None:
        super().__init__(daemon=True)
        self.args = (world, name, labelers)
        self.run_result: Any = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.run_result = run_with(*self.args)
        except Exception as exc:  # reported by the test that joins
            self.error = exc


def test_a_task_that_is_over_closes_its_job_and_keeps_its_answers(world: World) -> None:
    """What StopExecution does to the waiting task, as the sweep sees it.

    On AWS a stopped execution's task token is refused from then on (``TaskTimedOut``). moto
    5.2.5 with boxloop's emulator patches leaves a stopped execution waiting on a
    ``.waitForTaskToken`` task (status stays RUNNING, the token stays valid), so the test
    ends the waiting task the other way Step Functions allows, ``SendTaskFailure``, and checks
    what the sweep does once the token is refused: the same path a stop takes.
    """
    # GIVEN an execution waiting on its first labeling job, one image answered
    background = Background(world, "app-stop", [])
    background.start()
    job = _wait_for(lambda: _job_of(world, "app-stop"), "the job to open")
    labeler = Labeler(world, "stop@example.com")
    task = world.gateway.call("POST", "/api/v1/tasks/next", labeler.token, {}).body["task"]
    path = f"/api/v1/tasks/{task['task_id']}/submit"
    assert world.gateway.call("POST", path, labeler.token, labeler.submit_body(task)).status == 200
    # WHEN the waiting task ends without the job, and the sweep runs (every 5 minutes)
    store = world.store()
    client("stepfunctions").send_task_failure(
        taskToken=store.record_of(job).task_token, error="Stopped", cause="stopped by the owner"
    )
    background.join(timeout=120)
    swept = load_handler("finish_human_labeling")({}, None)
    # THEN the job is closed: nobody waits on it, the page has no job, a late submit is refused
    assert background.error is None
    assert background.run_result.result.status == "FAILED"
    assert swept["jobs"] == {job: "closed"}
    assert store.record_of(job).status == CLOSED and job not in store.open_jobs()
    assert world.gateway.call("GET", "/api/v1/session", labeler.token).body["job"] is None
    # (409: the submit carries the lease it held in the closed job; docs/labeling-api.md)
    late = world.gateway.call("POST", path, labeler.token, labeler.submit_body(task))
    assert (late.status, late.body["error"]["code"]) == (409, "job_closed")
    # AND the answer given before is kept (labels cost money)
    kept = store.answers_in(store.record_of(job).scope, task["task_id"])
    assert [a.worker_id for a in kept] == [task_worker(labeler)]


def task_worker(labeler: Labeler) -> str:
    """The labeler's worker id: its Cognito ``sub``."""
    return labeler.world.gateway.verify(f"Bearer {labeler.token}")["sub"]


def test_the_deadline_returns_unanswered_images_to_the_pool_as_expired(world: World) -> None:
    # GIVEN two labelers who answer 3 images each (the same 3: two workers per image)
    labelers = [
        Labeler(world, "slow1@example.com", max_images=3),
        Labeler(world, "slow2@example.com", max_images=3),
    ]
    background = Background(world, "app-deadline", labelers)
    background.start()
    job = _wait_for(lambda: _job_of(world, "app-deadline"), "the job to open")
    _wait_for(lambda: all(len(x.labeled) == 3 for x in labelers), "3 answers each")
    store = world.store()
    record = store.record_of(job)
    total = store.job_counts(job, WORKERS, time.time()).total
    # WHEN the sweep runs after the job's deadline
    assert sweep(now=record.deadline + 1) == {"jobs": {job: "completed"}}

    # THEN the job ends with the 3 labels; the rest are Unlabeled (Ground Truth's expired)
    # and MergeHumanLabels returns them to the pool
    def merged() -> dict[str, Any] | None:
        events = client("stepfunctions").get_execution_history(
            executionArn=_execution_arn("app-deadline"), maxResults=1000
        )["events"]
        results = _label_results(events)
        return results[0] if results else None

    result = _wait_for(merged, "MergeHumanLabels to start")
    assert result["job_name"] == job and result["status"] == "Completed"
    assert result["counters"]["HumanLabeled"] == 3
    assert result["counters"]["Unlabeled"] == total - 3
    assert {line["id"] for line in _output_lines(result["output_manifest"])} == set(
        labelers[0].labeled
    )
    # AND the job is closed: a second sweep leaves it alone
    assert sweep(now=record.deadline + 2)["jobs"].get(job) is None

    # (end the run: at its next job if it gets that far, since moto does not stop a waiting
    # task; with 3 labels the seed round may also fail in PrepareTraining, which is the loop's
    # own rule for too few labels)
    def next_job_or_end() -> Any:
        status = client("stepfunctions").describe_execution(
            executionArn=_execution_arn("app-deadline")
        )["status"]
        return status != "RUNNING" or _job_of(world, "app-deadline")

    next_job = _wait_for(next_job_or_end, "the next job or the run's end")
    if isinstance(next_job, str):
        client("stepfunctions").send_task_failure(
            taskToken=store.record_of(next_job).task_token, error="Stopped", cause="test over"
        )
    background.join(timeout=120)
    assert background.error is None
    assert background.run_result.result.status == "FAILED"


# --- the API behind its authorizer: tokens, duplicates, leases ---------------------------------


def _open_job(world: World, name: str, n: int, *, start: int, workers: int = 1) -> list[str]:
    """A job of ``n`` images registered as StartHumanLabeling would (the only open job).

    ``start``: where in the sorted images the job's begin (tests use images no other answered).
    """
    store = world.store()
    for job in store.open_jobs():
        store.close_job(job)
    uris = sorted(world.harness.reference)[start : start + n]
    manifest = f"s3://{BUCKET}/api-tests/{name}.manifest"
    write_text(manifest, "".join(json.dumps({"source-ref": uri}) + "\n" for uri in uris))
    tasks = [
        TaskInfo(task_id=record_id(uri), source_ref=uri, image=uri, width=w, height=h)
        for uri in uris
        for w, h in [world.harness.reference[uri].image_wh]
    ]
    store.register(
        JobInfo(name=name, classes={0: "a", 1: "b", 2: "c"}, workers_per_object=workers),
        tasks,
        task_token="not-a-token-of-any-execution",
        execution="",
        deadline=time.time() + 3600,
        spec={
            "input_manifest": manifest,
            "output_path": f"s3://{BUCKET}/api-tests",
            "label_attribute": ATTR,
        },
    )
    return [t.task_id for t in tasks]


def test_the_authorizer_refuses_missing_wrong_and_foreign_tokens(world: World) -> None:
    _open_job(world, "api-auth", 1, start=20)
    gateway = world.gateway
    labeler = Labeler(world, "auth@example.com")
    assert gateway.call("GET", "/api/v1/session", labeler.token).status == 200
    assert gateway.call("GET", "/api/v1/session", None).status == 401
    assert gateway.call("GET", "/api/v1/session", "not.a.jwt").status == 401
    tampered = labeler.token[:-4] + ("AAAA" if not labeler.token.endswith("AAAA") else "BBBB")
    assert gateway.call("GET", "/api/v1/session", tampered).status == 401
    # a token of the same pool for another app client: wrong audience
    other_client = client("cognito-idp").create_user_pool_client(
        UserPoolId=world.pool.pool_id,
        ClientName="other",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    foreign = Pool(world.pool.pool_id, other_client, world.pool.logical_ids)
    assert gateway.call("GET", "/api/v1/session", foreign.sign_in("auth@example.com")).status == 401
    # a token of another pool: wrong issuer
    other_pool = client("cognito-idp").create_user_pool(PoolName="other")["UserPool"]["Id"]
    other_pool_client = client("cognito-idp").create_user_pool_client(
        UserPoolId=other_pool,
        ClientName="app",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    stranger = Pool(other_pool, other_pool_client, world.pool.logical_ids)
    stranger.add_labeler("mallory@example.com", group=None)
    assert (
        gateway.call("GET", "/api/v1/session", stranger.sign_in("mallory@example.com")).status
        == 401
    )
    # a user of the pool outside the labelers group: signed in, but not admitted
    world.pool.add_labeler("visitor@example.com", group=None)
    visitor = gateway.call("GET", "/api/v1/session", world.pool.sign_in("visitor@example.com"))
    assert (visitor.status, visitor.body["error"]["code"]) == (403, "forbidden")
    # a route that reached the Lambda without the authorizer's claims is refused there too
    bare = load_handler("labeling_api")(
        {"rawPath": "/api/v1/session", "requestContext": {"http": {"method": "GET"}}}, None
    )
    assert bare["statusCode"] == 401


def test_a_duplicate_submit_is_harmless_and_a_late_one_is_refused(world: World) -> None:
    first, second = _open_job(world, "api-duplicate", 2, start=0)
    labeler = Labeler(world, "dup@example.com")
    gateway = world.gateway
    task = gateway.call("POST", "/api/v1/tasks/next", labeler.token, {}).body["task"]
    path = f"/api/v1/tasks/{task['task_id']}/submit"
    body = labeler.submit_body(task)
    once = gateway.call("POST", path, labeler.token, body)
    twice = gateway.call("POST", path, labeler.token, body)
    assert (once.status, once.body["duplicate"]) == (200, False)
    assert (twice.status, twice.body["duplicate"]) == (200, True)
    assert twice.body["counts"] == {"total": 2, "done": 1, "left": 1, "leased": 0}
    assert len(world.store().answers(task["task_id"])) == 1
    # the last image completes the job: its finisher runs once (here: no execution waits)
    other = gateway.call("POST", "/api/v1/tasks/next", labeler.token, {}).body["task"]
    assert {task["task_id"], other["task_id"]} == {first, second}
    done = gateway.call(
        "POST",
        f"/api/v1/tasks/{other['task_id']}/submit",
        labeler.token,
        labeler.submit_body(other),
    )
    assert done.status == 200
    store = world.store()
    assert store.record_of("api-duplicate").status == CLOSED
    assert finish_job(store, "api-duplicate") == "busy"
    late = gateway.call("POST", path, labeler.token, body)
    assert (late.status, late.body["error"]["code"]) == (409, "job_closed")


def test_an_expired_lease_goes_to_the_next_labeler(world: World) -> None:
    (task_id,) = _open_job(world, "api-lease", 1, start=10)
    now = [time.time()]
    gateway = Gateway(
        world.gateway_template,
        world.pool,
        lambda event, context: handle_http_event(event, clock=lambda: now[0]),
    )
    first, second = Labeler(world, "lease1@example.com"), Labeler(world, "lease2@example.com")
    held = gateway.call("POST", "/api/v1/tasks/next", first.token, {}).body["task"]
    assert held["task_id"] == task_id
    waiting = gateway.call("POST", "/api/v1/tasks/next", second.token, {}).body
    assert (waiting["task"], waiting["reason"]) == (None, "all-leased")
    now[0] += DEFAULT_LEASE_S + 1  # the first labeler walked away
    taken = gateway.call("POST", "/api/v1/tasks/next", second.token, {}).body["task"]
    assert taken["task_id"] == task_id and taken["lease_id"] != held["lease_id"]
    stale = gateway.call(
        "POST", f"/api/v1/tasks/{task_id}/submit", first.token, first.submit_body(held)
    )
    assert (stale.status, stale.body["error"]["code"]) == (410, "lease_expired")
    fresh = gateway.call(
        "POST", f"/api/v1/tasks/{task_id}/submit", second.token, second.submit_body(taken)
    )
    assert fresh.status == 200
