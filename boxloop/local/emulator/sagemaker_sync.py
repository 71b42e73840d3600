"""The ``.sync`` integration pattern for SageMaker job tasks in moto's Step Functions engine."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
    CustomErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
    StatesErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
    ResourceCondition,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported import (  # noqa: E501
    StateTaskServiceUnsupported,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

if TYPE_CHECKING:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.credentials import (
        StateCredentials,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
        ResourceRuntimePart,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (  # noqa: E501
        StateTaskService,
    )
    from moto.stepfunctions.parser.asl.eval.environment import Environment

    from boxloop.local.emulator._ledger import PatchLedger

# create action -> (describe action, job name field, status field)
_DESCRIBE: Final[dict[str, tuple[str, str, str]]] = {
    "create_training_job": ("describe_training_job", "TrainingJobName", "TrainingJobStatus"),
    "create_transform_job": ("describe_transform_job", "TransformJobName", "TransformJobStatus"),
    "create_processing_job": (
        "describe_processing_job",
        "ProcessingJobName",
        "ProcessingJobStatus",
    ),
    "create_labeling_job": ("describe_labeling_job", "LabelingJobName", "LabelingJobStatus"),
}
_RUNNING: Final = frozenset({"InProgress", "Initializing", "Stopping"})
_FAILED: Final = frozenset({"Failed", "Stopped"})
# SageMaker error codes the AWS Java SDK models as exception classes; Step Functions names an
# API error SageMaker.<ExceptionClass>, and every other code SageMaker.AmazonSageMakerException:
# ThrottlingException and ValidationException alike, so an ASL cannot retry one and not the
# other. The AWS docs' own example (Step Functions developer guide, "Create and manage Amazon
# SageMaker AI jobs with Step Functions", training job example) retries
# "SageMaker.AmazonSageMakerException" and "SageMaker.ResourceLimitExceededException" by these
# names; a .sync job that ends Failed or Stopped fails the task with States.TaskFailed.
_MODELED_CODES: Final = frozenset({"ResourceInUse", "ResourceLimitExceeded", "ResourceNotFound"})


def _json_safe(value: Any) -> Any:
    """A Describe* response as Step Functions passes it on: plain JSON, datetimes as ISO text."""

    def default(obj: Any) -> str:
        if isinstance(obj, dt.datetime | dt.date):
            return obj.isoformat()
        raise TypeError(f"not JSON serializable: {type(obj)!r}")

    return json.loads(json.dumps(value, default=default))


class SageMakerSyncService(StateTaskServiceUnsupported):
    """moto's forwarding SageMaker task, plus ``.sync`` on the four job-creating actions."""

    def __init__(self) -> None:
        super().__init__()
        # waitForTaskToken stays: moto's callback code dereferences its endpoint unconditionally.
        self._supported_integration_patterns = {
            ResourceCondition.WaitForTaskToken,
            ResourceCondition.Sync,
        }

    def _log_unsupported_warning(self) -> None:
        """Silence moto's "unsupported integration" warning: this one is supported here."""

    def _failure(self, env: Environment, error: str, cause: str, name: Any) -> FailureEvent:
        return FailureEvent(
            env=env,
            error_name=name,
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                taskFailedEventDetails=TaskFailedEventDetails(
                    error=error,
                    cause=cause,
                    resource=self._get_sfn_resource(),
                    resourceType=self._get_sfn_resource_type(),
                )
            ),
        )

    def _from_error(self, env: Environment, ex: Exception) -> FailureEvent:
        """Name SageMaker API errors as Step Functions does (moto says ``States.Runtime``)."""
        if not isinstance(ex, ClientError):
            return super()._from_error(env=env, ex=ex)
        code = ex.response["Error"]["Code"]
        exception = f"{code}Exception" if code in _MODELED_CODES else "AmazonSageMakerException"
        error = f"SageMaker.{exception}"
        cause = (
            f"{ex.response['Error']['Message']} (Service: AmazonSageMaker; Status Code: "
            f"{ex.response['ResponseMetadata']['HTTPStatusCode']}; Error Code: {code}; "
            f"Request ID: {ex.response['ResponseMetadata'].get('RequestId')}; Proxy: null)"
        )
        return self._failure(env, error, cause, CustomErrorName(error))

    def _build_sync_resolver(
        self,
        env: Environment,
        resource_runtime_part: ResourceRuntimePart,
        normalised_parameters: dict,
        state_credentials: StateCredentials,
    ) -> Callable[[], Any] | None:
        """Poll Describe* until the job ends; a Failed/Stopped job fails the task.

        A failed job surfaces as ``States.TaskFailed`` with the Describe* response (which holds
        ``FailureReason``) as the JSON ``Cause``, as for Step Functions' other ``.sync`` jobs.
        """
        action = self._get_boto_service_action()
        if action not in _DESCRIBE:
            return super()._build_sync_resolver(
                env, resource_runtime_part, normalised_parameters, state_credentials
            )
        describe_action, name_field, status_field = _DESCRIBE[action]
        env.stack.pop()  # the Create* response; the task's result is the final Describe*
        client = boto_client_for(
            region=resource_runtime_part.region,
            service="sagemaker",
            state_credentials=state_credentials,
        )
        job_name = normalised_parameters[name_field]

        def resolve() -> Any | None:
            described = getattr(client, describe_action)(**{name_field: job_name})
            described.pop("ResponseMetadata", None)
            status = described[status_field]
            if status in _RUNNING:
                return None
            described = _json_safe(described)
            if status in _FAILED:
                task_failed = StatesErrorNameType.StatesTaskFailed
                raise FailureEventException(
                    self._failure(
                        env,
                        task_failed.to_name(),
                        json.dumps(described),
                        StatesErrorName(typ=task_failed),
                    )
                )
            return described

        return resolve


def _service_for(service_name: str) -> StateTaskService:
    """Replacement for moto's task factory: SageMaker gets the ``.sync``-capable service."""
    if service_name == "sagemaker":
        return SageMakerSyncService()
    return _MOTO_SERVICE_FOR(service_name=service_name)


_MOTO_SERVICE_FOR: Final = state_task_factory.state_task_service_for


def install(ledger: PatchLedger) -> None:
    """Make ``state_task_factory`` build :class:`SageMakerSyncService` for ``sagemaker:*``."""
    ledger.set(state_task_factory, "state_task_service_for", _service_for)
