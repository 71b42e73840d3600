"""DynamoTaskStore on moto's DynamoDB: the TaskStore contract with conditional writes."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from boxloop.aws import clients
from boxloop.aws.labeling_store import CLOSED, FINISHING, OPEN, DynamoTaskStore
from boxloop.labeling.contract import Answer, AnswerBox, JobInfo, TaskInfo

TABLE = "labeling-tasks"
JOB = JobInfo(name="run-label", classes={0: "car", 1: "person"}, workers_per_object=1)


@pytest.fixture
def db(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    clients.clear()
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        # the key schema of stacks/labeling.py's table
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield dynamodb
    clients.clear()


def _tasks(n: int) -> list[TaskInfo]:
    return [
        TaskInfo(
            task_id=f"t{i}",
            source_ref=f"s3://images/{i}.png",
            image=f"s3://images/{i}.png",
            width=64,
            height=48,
        )
        for i in range(n)
    ]


def _register(
    store: DynamoTaskStore,
    n: int = 3,
    *,
    job: JobInfo = JOB,
    token: str = "tok-1",
    scope: str = "run-1",
):
    return store.register(
        job,
        _tasks(n),
        task_token=token,
        execution="arn:exec",
        deadline=1000.0,
        spec={"input_manifest": "s3://b/in.manifest"},
        failed={"bad": "unreadable header"},
        scope=scope,
        now=1.0,
    )


def _answer(task_id: str, worker: str, *, left: float = 1.0, job: str = JOB.name) -> Answer:
    return Answer(
        task_id=task_id,
        worker_id=worker,
        worker_name=None,
        job=job,
        source_ref=f"s3://images/{task_id}.png",
        image_wh=(64, 48),
        boxes=(AnswerBox(class_id=0, left=left, top=2.0, width=10.0, height=8.0),),
        no_objects=False,
        at=5.0,
    )


def test_register_is_idempotent_and_takes_the_newest_token(db):
    store = DynamoTaskStore(TABLE, dynamodb=db)
    assert _register(store) is True
    lease = DynamoTaskStore(TABLE, dynamodb=db).claim("w1", now=2.0, lease_s=60).lease
    assert lease is not None
    # a retried invoke registers again with a new token: tasks and leases stay
    assert _register(DynamoTaskStore(TABLE, dynamodb=db), token="tok-2") is False
    fresh = DynamoTaskStore(TABLE, dynamodb=db)
    record = fresh.record_of(JOB.name)
    assert (record.status, record.task_token, record.deadline) == (OPEN, "tok-2", 1000.0)
    assert fresh.lease_of(lease.task_id, "w1", now=3.0) == lease
    assert fresh.counts(now=3.0).to_json() == {"total": 3, "done": 0, "left": 3, "leased": 1}
    assert fresh.failed_images(JOB.name) == {"bad": "unreadable header"}
    assert fresh.open_jobs() == [JOB.name]


def test_claims_give_different_images_until_all_are_leased(db):
    _register(DynamoTaskStore(TABLE, dynamodb=db), n=2)
    first = DynamoTaskStore(TABLE, dynamodb=db).claim("w1", now=2.0, lease_s=60)
    second = DynamoTaskStore(TABLE, dynamodb=db).claim("w2", now=2.0, lease_s=60)
    third = DynamoTaskStore(TABLE, dynamodb=db).claim("w3", now=2.0, lease_s=60)
    assert {first.lease.task_id, second.lease.task_id} == {"t0", "t1"}
    assert (third.lease, third.reason) == (None, "all-leased")
    # the same worker asking again gets its own lease back, renewed
    again = DynamoTaskStore(TABLE, dynamodb=db).claim("w1", now=30.0, lease_s=60)
    assert again.lease.task_id == first.lease.task_id
    assert again.lease.lease_id == first.lease.lease_id
    assert again.lease.expires_at == 90.0


def test_an_expired_lease_returns_the_image_to_others(db):
    _register(DynamoTaskStore(TABLE, dynamodb=db), n=1)
    held = DynamoTaskStore(TABLE, dynamodb=db).claim("w1", now=2.0, lease_s=60).lease
    assert DynamoTaskStore(TABLE, dynamodb=db).claim("w2", now=61.0, lease_s=60).lease is None
    taken = DynamoTaskStore(TABLE, dynamodb=db).claim("w2", now=62.5, lease_s=60).lease
    assert taken.task_id == held.task_id and taken.lease_id != held.lease_id
    assert DynamoTaskStore(TABLE, dynamodb=db).lease_of(held.task_id, "w1", now=62.5) is None


def test_release_frees_only_the_holders_own_lease(db):
    _register(DynamoTaskStore(TABLE, dynamodb=db), n=1)
    store = DynamoTaskStore(TABLE, dynamodb=db)
    lease = store.claim("w1", now=2.0, lease_s=60).lease
    assert store.release(lease.task_id, "someone-elses", "w1") is False
    assert store.release(lease.task_id, lease.lease_id, "w2") is False
    assert store.release(lease.task_id, lease.lease_id, "w1") is True
    assert store.claim("w2", now=3.0, lease_s=60).lease.task_id == lease.task_id


def test_answers_are_recorded_once_and_complete_the_task(db):
    _register(DynamoTaskStore(TABLE, dynamodb=db), n=2)
    store = DynamoTaskStore(TABLE, dynamodb=db)
    lease = store.claim("w1", now=2.0, lease_s=60).lease
    assert store.record(_answer(lease.task_id, "w1")) is False
    assert store.record(_answer(lease.task_id, "w1")) is True  # same content: duplicate
    assert store.record(_answer(lease.task_id, "w1", left=3.0)) is False  # a correction
    (answer,) = store.answers(lease.task_id)
    assert answer.boxes[0].left == 3.0
    assert store.lease_of(lease.task_id, "w1", now=3.0) is None
    assert store.counts(now=3.0).to_json() == {"total": 2, "done": 1, "left": 1, "leased": 0}
    # the answered image is not offered again, to anyone
    assert store.claim("w2", now=3.0, lease_s=60).lease.task_id != lease.task_id


def test_several_workers_per_image_each_answer_once(db):
    job = JobInfo(name="run-label-3", classes={0: "car"}, workers_per_object=2)
    _register(DynamoTaskStore(TABLE, dynamodb=db), n=1, job=job)
    store = DynamoTaskStore(TABLE, dynamodb=db)
    a = store.claim("w1", now=2.0, lease_s=60).lease
    b = store.claim("w2", now=2.0, lease_s=60).lease
    assert a.task_id == b.task_id == "t0"
    assert store.claim("w3", now=2.0, lease_s=60).reason == "all-leased"
    store.record(_answer("t0", "w1", job=job.name))
    assert store.claim("w1", now=3.0, lease_s=60).reason == "done"
    store.record(_answer("t0", "w2", job=job.name))
    assert [x.worker_id for x in store.answers("t0")] == ["w1", "w2"]
    assert store.counts(now=3.0).done == 1


def test_an_image_answered_in_an_earlier_job_is_done_when_registered_again(db):
    _register(DynamoTaskStore(TABLE, dynamodb=db), n=1)
    store = DynamoTaskStore(TABLE, dynamodb=db)
    store.record(_answer("t0", "w1"))
    store.close_job(JOB.name)
    later = JobInfo(name="run-label-next", classes=JOB.classes)
    _register(DynamoTaskStore(TABLE, dynamodb=db), n=1, job=later)
    store = DynamoTaskStore(TABLE, dynamodb=db)
    assert store.counts(now=3.0).done == 1
    assert [a.worker_id for a in store.answers("t0")] == ["w1"]
    # another run over the same image (perhaps with other classes) asks for it afresh
    store.close_job(later.name)
    other_run = JobInfo(name="other-label", classes=JOB.classes)
    _register(DynamoTaskStore(TABLE, dynamodb=db), n=1, job=other_run, scope="run-2")
    fresh = DynamoTaskStore(TABLE, dynamodb=db)
    assert (fresh.counts(now=3.0).done, fresh.answers("t0")) == (0, [])
    assert fresh.claim("w1", now=3.0, lease_s=60).lease.task_id == "t0"
    assert len(fresh.answers_in("run-1", "t0")) == 1


def test_finishing_is_taken_once_and_a_dead_finisher_is_taken_over(db):
    _register(DynamoTaskStore(TABLE, dynamodb=db), n=1)
    store = DynamoTaskStore(TABLE, dynamodb=db)
    assert store.take_for_finishing(JOB.name, 10.0, stale_s=600).status == FINISHING
    assert store.take_for_finishing(JOB.name, 20.0, stale_s=600) is None
    assert store.take_for_finishing(JOB.name, 611.0, stale_s=600) is not None
    store.close_job(JOB.name)
    assert store.take_for_finishing(JOB.name, 5000.0, stale_s=600) is None
    fresh = DynamoTaskStore(TABLE, dynamodb=db)
    assert fresh.record_of(JOB.name).status == CLOSED
    assert (fresh.job(), fresh.open_jobs()) == (None, [])
    assert fresh.claim("w1", now=3.0, lease_s=60).reason == "no-job"
    # registering a closed job again (a late retry) does not reopen it
    assert _register(fresh) is False and fresh.record_of(JOB.name).status == CLOSED


def test_worker_names_are_kept(db):
    store = DynamoTaskStore(TABLE, dynamodb=db)
    assert store.worker_name("w1") is None
    store.set_worker_name("w1", "Ada")
    assert DynamoTaskStore(TABLE, dynamodb=db).worker_name("w1") == "Ada"
