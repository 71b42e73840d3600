"""The local Step Functions engine: moto 5.2.5 plus the few patches boxloop's workflow needs.

Every patch of moto internals for boxloop lives in this package. Nothing is patched at import
time: call :func:`apply` (idempotent) inside ``mock_aws(config=MOTO_CONFIG)``, :func:`reset`
between tests, :func:`remove` to give moto back untouched (or use :func:`patched`).
moto is pinned exactly (``moto[stepfunctions,s3]==5.2.5``) and :func:`apply` refuses any other
version, because the patches replace private functions. Paths below are inside moto 5.2.5
(``site-packages/moto/``); ASL = ``stepfunctions/parser/asl/component/``.

1. Lambda router (``lambda_router``). ``use_docker=False`` makes moto answer every Invoke by
   echoing the payload (``awslambda_simple/models.py`` ``LambdaSimpleBackend.invoke``). We
   replace that method: the handler registered with :func:`register_lambda` runs in process;
   an exception becomes the Python runtime's unhandled-error envelope (``errorType`` = the class
   name, header ``X-Amz-Function-Error: Unhandled``), so ASL Retry/Catch match class names;
   :class:`LambdaThrottled` becomes HTTP 429 ``TooManyRequestsException``, which the engine names
   ``Lambda.TooManyRequestsException``. For a plain function-ARN resource moto names every
   Invoke API error ``Exception``; we patch ``ASL/state/exec/state_task/state_task_lambda.py``
   ``StateTaskLambda._from_error`` to report ``Lambda.<Code>`` as AWS does.
2. SageMaker ``.sync`` (``sagemaker_sync``). moto forwards ``sagemaker:*`` tasks as
   request-response only (``ASL/state/exec/state_task/service/state_task_service_factory.py``,
   ``_UNSUPPORTED_SERVICE_NAMES``) and rejects ``.sync``. We replace the factory function as
   imported by ``ASL/state/exec/state_task/state_task_factory.py`` (``state_task_service_for``):
   ``sagemaker`` gets ``sagemaker_sync.SageMakerSyncService``, a subclass of
   ``state_task_service_unsupported.StateTaskServiceUnsupported`` that polls Describe* for
   training, transform, processing and labeling jobs, returns it (datetimes as ISO text), fails
   a Failed/Stopped job with ``States.TaskFailed`` (Describe* JSON as Cause, as for Glue and
   Batch), and names API errors ``SageMaker.AmazonSageMakerException`` (or
   ``SageMaker.Resource{InUse,LimitExceeded,NotFound}Exception``) instead of ``States.Runtime``.
3. Local job runners (``sagemaker_jobs``). moto marks every job ``Completed`` at once
   (``sagemaker/models.py``). We wrap ``sagemaker/responses.py`` ``SageMakerResponse.
   create_{training,transform,processing}_job``: after moto records the job, the runner
   registered with :func:`register_sagemaker_runner` does the work synchronously, inside the
   Create* call, and its :class:`JobResult` is written onto moto's job object (status,
   FailureReason, FinalMetricDataList, outputs). A runner that raises fails the job with
   ``AlgorithmError: ...``, as a crashing algorithm does on SageMaker. A reused job name is
   refused with ``ResourceInUse`` (moto would replace the job). A runner that raises
   :class:`SageMakerApiError` makes the Create* call fail with that API error instead (fault
   tests: throttling, validation, quota, a service fault after the job was accepted).
   ``stop_{training,transform,processing}_job`` stop an InProgress job at once and refuse an
   ended one with ``ValidationException`` (moto 5.2.5 has only StopProcessingJob, any status).
4. Ground Truth (``sagemaker_jobs``). moto 5.2.5 has no labeling-job API; we add
   ``create_labeling_job`` / ``describe_labeling_job`` / ``stop_labeling_job`` methods to
   ``SageMakerResponse`` (moto dispatches on the snake_cased action name), backed by a dict
   stored on moto's SageMaker backend (so moto's own reset drops it) and driven by the labeling
   runner.
5. Instant delays (``delays``), optional. ``ASL/state/wait/wait_function/wait_function.py``
   ``WaitFunction._wait_interval`` really blocks, and ``ASL/common/retry/retrier_decl.py`` calls
   ``time.sleep``; we replace the first and that module's ``time``, recording each skipped
   delay (:func:`skipped_delays`).

Not patches: :mod:`.definitions` turns CDK's synthesized ``DefinitionString`` or an ASL file with
``${Substitutions}`` into plain JSON, and :mod:`.executions` runs an execution to its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from boxloop.local.emulator import delays, lambda_router, sagemaker_jobs, sagemaker_sync
from boxloop.local.emulator._ledger import (
    MOTO_VERSION,
    MotoVersionError,
    PatchLedger,
    check_moto_version,
)
from boxloop.local.emulator.definitions import (
    definition_from_template,
    resolve_intrinsics,
    substitute_definition,
)
from boxloop.local.emulator.delays import SkippedDelay, skipped_delays
from boxloop.local.emulator.executions import (
    ExecutionResult,
    ExecutionTimeoutError,
    create_state_machine,
    run_definition,
    run_execution,
)
from boxloop.local.emulator.lambda_router import LambdaContext, LambdaThrottled, register_lambda
from boxloop.local.emulator.sagemaker_jobs import (
    JobResult,
    SageMakerApiError,
    register_sagemaker_runner,
)

__all__ = [
    "MOTO_CONFIG",
    "MOTO_VERSION",
    "ExecutionResult",
    "ExecutionTimeoutError",
    "JobResult",
    "LambdaContext",
    "LambdaThrottled",
    "MotoVersionError",
    "SageMakerApiError",
    "SkippedDelay",
    "apply",
    "check_moto_version",
    "create_state_machine",
    "definition_from_template",
    "is_applied",
    "patched",
    "register_lambda",
    "register_sagemaker_runner",
    "remove",
    "reset",
    "resolve_intrinsics",
    "run_definition",
    "run_execution",
    "skipped_delays",
    "substitute_definition",
]

#: The ``mock_aws(config=...)`` the patches expect: Lambda without docker, real ASL execution.
MOTO_CONFIG: Final[dict[str, Any]] = {
    "lambda": {"use_docker": False},
    "stepfunctions": {"execute_state_machine": True},
}

_LEDGER = PatchLedger()
_APPLIED: list[bool] = []  # one entry while the patches are in place


def apply(*, instant_delays: bool = True) -> None:
    """Patch moto (again: idempotent); ``instant_delays`` may be switched on every call.

    Raises:
        MotoVersionError: moto is not :data:`MOTO_VERSION`.
    """
    check_moto_version()
    if not _APPLIED:
        lambda_router.install(_LEDGER)
        sagemaker_sync.install(_LEDGER)
        sagemaker_jobs.install(_LEDGER)
        _APPLIED.append(True)
    if instant_delays:
        delays.install(_LEDGER)
    else:
        delays.uninstall(_LEDGER)


def reset() -> None:
    """Forget registered handlers and runners and the skipped delays; patches stay."""
    lambda_router.clear()
    sagemaker_jobs.clear()
    delays.clear()


def remove() -> None:
    """Undo every patch and :func:`reset`; moto is as imported. Safe to call when not applied."""
    _LEDGER.restore_all()
    _APPLIED.clear()
    reset()


def is_applied() -> bool:
    """Whether the patches are in place."""
    return bool(_APPLIED)


@contextmanager
def patched(*, instant_delays: bool = True) -> Iterator[None]:
    """:func:`apply` for the ``with`` block, then :func:`remove` (also on error)."""
    apply(instant_delays=instant_delays)
    try:
        yield
    finally:
        remove()
