"""SageMaker jobs in moto done by local runner callables; Ground Truth labeling jobs added."""

from __future__ import annotations

import copy
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import camelcase_to_underscores, utcnow
from moto.sagemaker.exceptions import ResourceInUseException, ResourceNotFound, ValidationError
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemaker.utils import arn_formatter

if TYPE_CHECKING:
    from moto.sagemaker.models import SageMakerModelBackend

    from boxloop.local.emulator._ledger import PatchLedger

LOG = logging.getLogger(__name__)

JobAction = Literal[
    "create_training_job", "create_transform_job", "create_processing_job", "create_labeling_job"
]

# create action -> (request field naming the job, moto backend dict of jobs, status attribute)
_MOTO_JOBS: Final[dict[str, tuple[str, str, str]]] = {
    "create_training_job": ("TrainingJobName", "training_jobs", "training_job_status"),
    "create_transform_job": ("TransformJobName", "transform_jobs", "transform_job_status"),
    "create_processing_job": ("ProcessingJobName", "processing_jobs", "processing_job_status"),
}
JOB_ACTIONS: Final[frozenset[str]] = frozenset({*_MOTO_JOBS, "create_labeling_job"})
# Stop*Job, for the same three moto jobs (moto 5.2.5 has only StopProcessingJob, which stops a
# job in any status). A job stops at once here; SageMaker passes through Stopping first.
_MOTO_STOPS: Final[dict[str, str]] = {
    "stop_training_job": "create_training_job",
    "stop_transform_job": "create_transform_job",
    "stop_processing_job": "create_processing_job",
}
_STOPPABLE: Final = frozenset({"InProgress", "Initializing"})
_LABELING_STORE_ATTR: Final = "_boxloop_labeling_jobs"  # lives and dies with moto's backend


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    """How a locally run SageMaker job ended, and what its Describe* call should report.

    Attributes:
        status: the terminal job status.
        failure_reason: required when ``status`` is ``"Failed"``; Describe* ``FailureReason``.
        outputs: Describe* fields to set, named as in the API (``"ModelArtifacts"``,
            ``"LabelCounters"``, ``"LabelingJobOutput"``, ...); they replace moto's values.
        metrics: training only: final metric values by name (``{"validation:mAP": 0.61}``),
            reported as ``FinalMetricDataList`` (what a quality gate reads by metric name).
    """

    status: Literal["Completed", "Failed"]
    failure_reason: str | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in ("Completed", "Failed"):
            raise ValueError(f"status must be 'Completed' or 'Failed', got {self.status!r}")
        if self.status == "Failed" and not self.failure_reason:
            raise ValueError("a Failed job needs a failure_reason (SageMaker always gives one)")


class SageMakerApiError(Exception):
    """Raise from a runner: SageMaker answers the Create* call with this API error instead.

    For fault tests: ``ThrottlingException`` (status 400) as a throttled call,
    ``ValidationException`` as a refused request, ``ResourceLimitExceeded`` as a full quota,
    ``InternalFailure`` (status 500) as a service fault. Step Functions names each the way
    ``sagemaker_sync`` does (``SageMaker.AmazonSageMakerException`` unless the code is one
    SageMaker models as an exception class).

    Attributes:
        code: the API error code.
        message: the error message.
        status: the HTTP status of the response.
        accepted: SageMaker created the job before the call failed (the response was lost on
            its way back): the job keeps its name and runs on ``InProgress``, unattended.
            Otherwise no job is created.
    """

    def __init__(self, code: str, message: str, *, status: int = 400, accepted: bool = False):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.accepted = accepted


class _ApiErrorResponse(JsonRESTError):
    """The HTTP error moto serves for a :class:`SageMakerApiError`."""

    def __init__(self, error: SageMakerApiError) -> None:
        super().__init__(error.code, error.message)
        self.code = error.status


#: A local runner: gets the Create* request exactly as the API received it, does the work.
Runner = Callable[[dict[str, Any]], JobResult]

_RUNNERS: dict[str, Runner] = {}
_LOCK = threading.Lock()


def register_sagemaker_runner(action: JobAction, runner: Runner) -> None:
    """Run ``runner`` synchronously whenever moto's SageMaker receives ``action``.

    Without a runner, training, transform and processing jobs keep moto's behaviour (instantly
    ``Completed``); a labeling job is refused with a ``ValidationException`` naming this function.

    Raises:
        ValueError: ``action`` is not one of the four job-creating actions.
    """
    if action not in JOB_ACTIONS:
        raise ValueError(f"unknown SageMaker job action {action!r}; one of {sorted(JOB_ACTIONS)}")
    with _LOCK:
        _RUNNERS[action] = runner


def clear() -> None:
    """Forget every registered runner."""
    with _LOCK:
        _RUNNERS.clear()


def _run(action: str, runner: Runner, request: dict[str, Any]) -> JobResult:
    """Call the runner; an exception fails the job, as an algorithm error does on SageMaker."""
    try:
        result = runner(request)
    except SageMakerApiError:
        raise  # an injected API error answers the Create* call; there is no job to fail
    except Exception as exc:  # a crashing job is a Failed job, not a crashed service
        LOG.exception("local runner for %s raised", action)
        return JobResult(status="Failed", failure_reason=f"AlgorithmError: {exc!r}")
    if not isinstance(result, JobResult):
        raise TypeError(f"the {action} runner must return a JobResult, got {type(result)!r}")
    return result


def _set_outputs(job: Any, outputs: Mapping[str, Any]) -> None:
    """Set Describe* fields on a moto job object, whose response is built from its attributes."""
    for key, value in outputs.items():
        attribute = camelcase_to_underscores(key)
        if job.camelCase(attribute) != key:
            raise ValueError(f"cannot report Describe* field {key!r} through moto's job object")
        setattr(job, attribute, copy.deepcopy(value))


def _apply_to_moto_job(action: str, job: Any, result: JobResult) -> None:
    status_attribute = _MOTO_JOBS[action][2]
    setattr(job, status_attribute, result.status)
    job.last_modified_time = utcnow()
    if result.failure_reason:
        job.failure_reason = result.failure_reason
    if action == "create_training_job":
        job.secondary_status = result.status
        if result.metrics:
            job.final_metric_data_list = [
                {"MetricName": name, "Value": float(value), "Timestamp": job.last_modified_time}
                for name, value in result.metrics.items()
            ]
    _set_outputs(job, result.outputs)


def _wrap_moto_create(action: str, moto_create: Callable[[SageMakerResponse], Any]) -> Callable:
    name_field, jobs_attribute, _ = _MOTO_JOBS[action]

    def create(self: SageMakerResponse) -> Any:
        request = copy.deepcopy(dict(self.params))  # before moto edits it in place
        jobs = getattr(self.sagemaker_backend, jobs_attribute)
        name = request.get(name_field)
        if name in jobs:  # moto would replace the job; SageMaker refuses the name
            raise ResourceInUseException(f"A job with name {name} already exists.")
        response = moto_create(self)  # moto records the job as Completed
        runner = _RUNNERS.get(action)
        if runner is not None:
            try:
                result = _run(action, runner, request)
            except SageMakerApiError as error:
                if error.accepted:
                    setattr(jobs[name], _MOTO_JOBS[action][2], "InProgress")
                else:
                    del jobs[name]
                raise _ApiErrorResponse(error) from error
            _apply_to_moto_job(action, jobs[name], result)
        return response

    create.__name__ = action
    return create


def _not_stoppable(name: str, status: str) -> ValidationError:
    """SageMaker's answer to Stop*Job on a job that has already ended (or is stopping)."""
    return ValidationError(
        f"The request was rejected because the job {name} is in status {status}."
    )


def _stop_moto_job(action: str) -> Callable:
    name_field, jobs_attribute, status_attribute = _MOTO_JOBS[_MOTO_STOPS[action]]

    def stop(self: SageMakerResponse) -> Any:
        name = self._get_param(name_field)
        job = getattr(self.sagemaker_backend, jobs_attribute).get(name)
        if job is None:  # what moto's Describe* answers for an unknown name
            raise ValidationError(f"Could not find job {name!r}.")
        status = getattr(job, status_attribute)
        if status not in _STOPPABLE:
            raise _not_stoppable(name, status)
        setattr(job, status_attribute, "Stopped")
        job.last_modified_time = utcnow()
        if action == "stop_training_job":
            job.secondary_status = "Stopped"
        return EmptyResult()

    stop.__name__ = action
    return stop


def _labeling_jobs(backend: SageMakerModelBackend) -> dict[str, dict[str, Any]]:
    jobs = getattr(backend, _LABELING_STORE_ATTR, None)
    if jobs is None:
        jobs = {}
        setattr(backend, _LABELING_STORE_ATTR, jobs)
    return jobs


def _labeling_describe(request: dict[str, Any], arn: str) -> dict[str, Any]:
    """A DescribeLabelingJob response for a job that has just started."""
    now = utcnow()
    describe = {
        key: copy.deepcopy(request[key])
        for key in (
            "LabelingJobName",
            "LabelAttributeName",
            "InputConfig",
            "OutputConfig",
            "RoleArn",
            "LabelCategoryConfigS3Uri",
            "StoppingConditions",
            "LabelingJobAlgorithmsConfig",
            "HumanTaskConfig",
            "Tags",
        )
        if key in request
    }
    describe.update(
        LabelingJobArn=arn,
        LabelingJobStatus="InProgress",
        JobReferenceCode=uuid.uuid4().hex,
        CreationTime=now,
        LastModifiedTime=now,
        LabelCounters={
            "TotalLabeled": 0,
            "HumanLabeled": 0,
            "MachineLabeled": 0,
            "FailedNonRetryableError": 0,
            "Unlabeled": 0,
        },
    )
    return describe


def _finish_labeling(describe: dict[str, Any], result: JobResult) -> None:
    describe["LabelingJobStatus"] = result.status
    describe["LastModifiedTime"] = utcnow()
    if result.failure_reason:
        describe["FailureReason"] = result.failure_reason
    if result.status == "Completed":  # SageMaker's default place for the output manifest
        output_path = describe["OutputConfig"]["S3OutputPath"].rstrip("/")
        name = describe["LabelingJobName"]
        describe["LabelingJobOutput"] = {
            "OutputDatasetS3Uri": f"{output_path}/{name}/manifests/output/output.manifest"
        }
    for key, value in result.outputs.items():
        if isinstance(value, Mapping) and isinstance(describe.get(key), dict):
            describe[key].update(copy.deepcopy(dict(value)))
        else:
            describe[key] = copy.deepcopy(value)


def _create_labeling_job(self: SageMakerResponse) -> ActionResult:
    """CreateLabelingJob, added to moto's SageMakerResponse (moto 5.2.5 has none)."""
    request = copy.deepcopy(dict(self.params))
    name = request["LabelingJobName"]
    jobs = _labeling_jobs(self.sagemaker_backend)
    runner = _RUNNERS.get("create_labeling_job")
    if runner is None:
        raise ValidationError(
            "no local labeling workforce: call boxloop.local.emulator."
            "register_sagemaker_runner('create_labeling_job', runner) first"
        )
    if name in jobs:
        raise ResourceInUseException(f"A labeling job with name {name} already exists.")
    arn = arn_formatter("labeling-job", name, self.current_account, self.region)
    jobs[name] = describe = _labeling_describe(request, arn)
    try:
        result = _run("create_labeling_job", runner, request)
    except SageMakerApiError as error:
        if not error.accepted:
            del jobs[name]
        raise _ApiErrorResponse(error) from error
    _finish_labeling(describe, result)
    return ActionResult({"LabelingJobArn": arn})


def _describe_labeling_job(self: SageMakerResponse) -> ActionResult:
    """DescribeLabelingJob, added to moto's SageMakerResponse."""
    name = self._get_param("LabelingJobName")
    describe = _labeling_jobs(self.sagemaker_backend).get(name)
    if describe is None:
        raise ResourceNotFound(f"Could not find labeling job {name!r}.")
    return ActionResult(copy.deepcopy(describe))


def _stop_labeling_job(self: SageMakerResponse) -> ActionResult:
    """StopLabelingJob, added to moto's SageMakerResponse: an open job stops at once."""
    name = self._get_param("LabelingJobName")
    describe = _labeling_jobs(self.sagemaker_backend).get(name)
    if describe is None:
        raise ResourceNotFound(f"Could not find labeling job {name!r}.")
    if describe["LabelingJobStatus"] not in _STOPPABLE:
        raise _not_stoppable(name, describe["LabelingJobStatus"])
    describe["LabelingJobStatus"] = "Stopped"
    describe["LastModifiedTime"] = utcnow()
    return EmptyResult()


def install(ledger: PatchLedger) -> None:
    """Wrap moto's Create*Job responses with the runners and add the labeling-job actions."""
    for action in _MOTO_JOBS:
        moto_create = ledger.original(SageMakerResponse, action)
        ledger.set(SageMakerResponse, action, _wrap_moto_create(action, moto_create))
    for action in _MOTO_STOPS:
        ledger.set(SageMakerResponse, action, _stop_moto_job(action))
    ledger.set(SageMakerResponse, "create_labeling_job", _create_labeling_job)
    ledger.set(SageMakerResponse, "describe_labeling_job", _describe_labeling_job)
    ledger.set(SageMakerResponse, "stop_labeling_job", _stop_labeling_job)
