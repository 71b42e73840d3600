"""Stop the SageMaker jobs that a retried attempt superseded, so that none runs on unattended.

Each ``.sync`` task of ``statemachine/boxloop.asl.json`` names its job
``<base>-<$$.State.RetryCount>`` and puts that real name in its result. When SageMaker accepted
a Create* call but the answer was lost (a fault or a timeout after acceptance), Step Functions
retries the task and attempt ``n`` runs while attempt ``n - 1`` keeps running, billed, with
nothing waiting on it. So the Lambda step that reads the job's result stops every earlier
attempt that is still running: it has the real name, and Step Functions' Retry has no place of
its own between two attempts.

Labeling jobs: a superseded labeling job keeps offering its human tasks, on the same images as
the retried job, until it is stopped. MergeHumanLabels can only stop it once the retried job has
ended (the ``.sync`` task waits for that), so for the retried job's whole life workers may label
an image twice, paid twice, and only the retried job's answers are merged. The window closes
when the retried job ends, or sooner when the superseded job's own tasks expire (the task
availability lifetime, ``availability_s``). Closing it at the retry itself would take a Catch
loop around the Label state in place of its Retry.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from boxloop.aws.clients import client

LOG = logging.getLogger(__name__)

JobKind = Literal["labeling", "training", "transform", "processing"]


@dataclass(frozen=True, slots=True)
class _JobApi:
    """The SageMaker calls and fields of one job kind."""

    describe: str
    stop: str
    name_field: str
    status_field: str


_APIS: Final[dict[str, _JobApi]] = {
    kind: _JobApi(
        describe=f"describe_{kind}_job",
        stop=f"stop_{kind}_job",
        name_field=f"{kind.capitalize()}JobName",
        status_field=f"{kind.capitalize()}JobStatus",
    )
    for kind in ("labeling", "training", "transform", "processing")
}
SUPERSEDED_KEY: Final = "superseded_jobs_stopped"
"""Where the steps carry (run counts, inference block) and report the names this module stops."""
RUNNING_STATUSES: Final = frozenset({"Initializing", "InProgress"})
"""Statuses in which a job can still be stopped (only labeling jobs have ``Initializing``)."""
STOPPING_STATUS: Final = "Stopping"
# Describe* of an unknown name: ResourceNotFound as modeled, but SageMaker answers training,
# transform and processing jobs with a ValidationException saying so.
_NOT_FOUND_CODES: Final = frozenset({"ResourceNotFound", "ResourceNotFoundException"})
_NOT_FOUND_MESSAGE: Final = re.compile(r"not found|could not find|does not exist", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class JobAttempt:
    """One attempt of a SageMaker job, named ``<base>-<attempt>`` as the ASL names it.

    Attributes:
        base: the name the Lambda step chose (``<prefix>-<run hash>-<iteration>-<kind>``).
        attempt: ``$$.State.RetryCount`` of the task that created the job, from 0.
    """

    base: str
    attempt: int

    def __post_init__(self) -> None:
        if not self.base:
            raise ValueError("a job attempt needs a base name")
        if self.attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {self.attempt}")

    @classmethod
    def parse(cls, name: str, *, base: str) -> JobAttempt | None:
        """The attempt that ``name`` is of ``base``; ``None`` when it is not ``<base>-<digits>``.

        ``base`` is required because a base name may itself end in ``-<digits>`` (the second
        labeling part's ``...-label-2``): a name is never split on its own.
        """
        suffix = name.removeprefix(f"{base}-") if base else name
        if suffix == name or not suffix.isascii() or not suffix.isdigit():
            return None
        return cls(base=base, attempt=int(suffix))

    @property
    def name(self) -> str:
        """The job's name: ``<base>-<attempt>``."""
        return f"{self.base}-{self.attempt}"

    def earlier(self) -> tuple[str, ...]:
        """The names of the attempts before this one, oldest first."""
        return tuple(f"{self.base}-{n}" for n in range(self.attempt))


def _code(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(sagemaker: Any, api: _JobApi, name: str) -> str | None:
    """The job's status, or ``None`` when there is no job of that name."""
    from botocore.exceptions import ClientError

    try:
        described = getattr(sagemaker, api.describe)(**{api.name_field: name})
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if _code(exc) in _NOT_FOUND_CODES or (
            _code(exc) == "ValidationException" and _NOT_FOUND_MESSAGE.search(message)
        ):
            return None
        raise
    return str(described[api.status_field])


def _stop(sagemaker: Any, api: _JobApi, name: str) -> bool:
    """Stop the job; ``False`` when it ended (or vanished) between Describe* and Stop*."""
    from botocore.exceptions import ClientError

    try:
        getattr(sagemaker, api.stop)(**{api.name_field: name})
    except ClientError as exc:
        if _code(exc) in _NOT_FOUND_CODES or _code(exc) == "ValidationException":
            return False  # SageMaker refuses to stop a job that is no longer running
        raise
    return True


def stop_superseded_jobs(kind: JobKind, job_name: str, *, base: str) -> tuple[str, ...]:
    """Stop every earlier attempt of ``job_name`` that is still running.

    Attempts ``<base>-0`` .. ``<base>-(n-1)`` of a job named ``<base>-n`` are described, and
    those ``Initializing`` or ``InProgress`` are stopped. One that does not exist (its create
    call was refused) or has ended is left alone. Attempt 0 (every run without a fault) and a
    name that is not ``<base>-<digits>`` make no call at all.

    Args:
        kind: the job kind: ``labeling``, ``training``, ``transform`` or ``processing``.
        job_name: the real name of the job the step reads (the task result's ``job_name``).
        base: the name the step's input chose, before the ASL added the attempt.

    Returns:
        The earlier attempts this call stopped, and those it found ``Stopping`` (so that a
        step re-run after a transient failure reports the stops of its first run too).

    Raises:
        ValueError: ``kind`` is not one of the four job kinds.
        botocore.exceptions.ClientError: a Describe* or Stop* call failed otherwise than for a
            missing or ended job (AccessDenied, throttling after botocore's retries).
    """
    if kind not in _APIS:
        raise ValueError(f"unknown SageMaker job kind {kind!r}; one of {sorted(_APIS)}")
    attempt = JobAttempt.parse(job_name, base=base)
    if attempt is None or attempt.attempt == 0:
        return ()
    api = _APIS[kind]
    sagemaker = client("sagemaker")
    superseded = []
    for name in attempt.earlier():
        status = _status(sagemaker, api, name)
        if status in RUNNING_STATUSES and _stop(sagemaker, api, name):
            LOG.info("stopped %s job %s, superseded by %s", kind, name, job_name)
            superseded.append(name)
        elif status == STOPPING_STATUS:
            superseded.append(name)
    return tuple(superseded)
