"""Check service requests the state machine renders against botocore's service models.

moto accepts whatever it is sent (its Step Functions engine even builds its clients with
``parameter_validation=False``), so a request that SageMaker or SNS would refuse on a real
account passes every local run. These helpers read each rendered request back from an
execution's history and check it as the service would:

- ``botocore.validate.ParamValidator``: unknown and missing keys, types, minimum lengths;
- what ParamValidator leaves to the service: the model's ``max`` (string length, list and
  map size, number range), ``pattern`` and ``enum`` traits;
- limits the service documents but the model omits (SNS ``Subject`` and ``Message``).

A pattern is matched against the whole value, as the services do (SageMaker refuses the
job name ``a_b`` although its pattern ``^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`` matches its
first letter), and on the value's UTF-16 code units, as the services' Java regexes see it
(the models spell characters outside the BMP as surrogate ranges).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Final

import botocore.session
from botocore.validate import ParamValidator

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from botocore.model import OperationModel, Shape

#: SNS Publish limits that botocore's model states only in its documentation text: "Subjects
#: must be UTF-8 text with no line breaks or control characters, and less than 100 characters
#: long"; a message is "at most 256 KB in size (262,144 bytes, not 262,144 characters)".
SNS_SUBJECT_MAX_CHARS: Final = 99
SNS_MESSAGE_MAX_BYTES: Final = 262_144
_NUMBERS: Final = frozenset({"integer", "long", "float", "double"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceRequest:
    """One service call a Task state made, with its parameters as Step Functions rendered them.

    Attributes:
        state: the Task state's name.
        service: botocore's service name (``sagemaker``, ``sns``).
        operation: the API operation (``CreateTrainingJob``), without ``.sync``.
        params: the resolved ``Parameters`` (every ``.$`` path already applied).
    """

    state: str
    service: str
    operation: str
    params: dict[str, Any]

    def label(self) -> str:
        """``State (service:Operation)``, for messages."""
        return f"{self.state} ({self.service}:{self.operation})"


def iter_service_requests(events: Iterable[dict[str, Any]]) -> Iterator[ServiceRequest]:
    """Every service-integration request of an execution history, in order.

    Step Functions writes a Task's resolved ``Parameters`` into its ``TaskScheduled`` event
    before it calls the service (moto's engine does too: ``StateTaskService.
    _before_eval_execution``), so the history holds each request as the ASL rendered it,
    retries included. Lambda tasks with a plain function ARN log ``LambdaFunctionScheduled``
    events instead and are not service requests.
    """
    state = ""
    for event in events:
        if "stateEnteredEventDetails" in event:
            state = event["stateEnteredEventDetails"]["name"]
        details = event.get("taskScheduledEventDetails")
        if details is None:
            continue
        action = details["resource"].split(".", 1)[0]  # createTrainingJob.sync -> createTrainingJob
        yield ServiceRequest(
            state=state,
            service=details["resourceType"],
            operation=action[:1].upper() + action[1:],
            params=json.loads(details["parameters"]),
        )


@cache
def operation_model(service: str, operation: str) -> OperationModel:
    """The installed botocore's model of ``service``'s ``operation`` (no client, no region)."""
    return botocore.session.get_session().get_service_model(service).operation_model(operation)


def request_problems(request: ServiceRequest) -> list[str]:
    """Everything the service would refuse in ``request``; empty when it is valid.

    Raises:
        botocore.exceptions.OperationNotFoundError: the operation is not in the model.
    """
    shape = operation_model(request.service, request.operation).input_shape
    report = ParamValidator().validate(request.params, shape)
    problems = report.generate_report().splitlines() if report.has_errors() else []
    problems.extend(constraint_problems(request.params, shape))
    if (request.service, request.operation) == ("sns", "Publish"):
        problems.extend(_sns_publish_problems(request.params))
    return problems


def constraint_problems(value: Any, shape: Shape, path: str = "") -> list[str]:
    """The ``max``, ``pattern`` and ``enum`` traits ``value`` breaks, walking ``shape``.

    Values of the wrong type are left to ParamValidator, which reports them.
    """
    where = path or "input"
    metadata = shape.metadata
    kind = shape.type_name
    problems = []
    if kind == "structure" and isinstance(value, dict):
        for key, member in value.items():
            if key in shape.members:
                problems += constraint_problems(member, shape.members[key], _join(path, key))
    elif kind == "list" and isinstance(value, list):
        problems += _max_problem(where, len(value), metadata, "items")
        for index, item in enumerate(value):
            problems += constraint_problems(item, shape.member, f"{where}[{index}]")
    elif kind == "map" and isinstance(value, dict):
        problems += _max_problem(where, len(value), metadata, "entries")
        for key, item in value.items():
            problems += constraint_problems(key, shape.key, f"{where} key {key!r}")
            problems += constraint_problems(item, shape.value, f"{where}[{key!r}]")
    elif kind == "string" and isinstance(value, str):
        problems += _max_problem(where, len(value), metadata, "characters")
        pattern = metadata.get("pattern")
        if pattern is not None and not _full_match(pattern, value):
            problems.append(f"{where}: {value!r} does not match the pattern {pattern!r}")
        if shape.enum and value not in shape.enum:
            problems.append(f"{where}: {value!r} is not one of {shape.enum}")
    elif kind in _NUMBERS and isinstance(value, int | float) and not isinstance(value, bool):
        if "max" in metadata and value > metadata["max"]:
            problems.append(f"{where}: {value} is above the maximum {metadata['max']}")
    return problems


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _max_problem(where: str, size: int, metadata: dict[str, Any], unit: str) -> list[str]:
    limit = metadata.get("max")
    if limit is not None and size > limit:
        return [f"{where}: {size} {unit}, more than the maximum {limit}"]
    return []


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _full_match(pattern: str, value: str) -> bool:
    """Whether ``value``'s UTF-16 code units, as a Java regex sees them, match all of it."""
    encoded = value.encode("utf-16-le")
    units = "".join(
        chr(int.from_bytes(encoded[i : i + 2], "little")) for i in range(0, len(encoded), 2)
    )
    return _compiled(pattern).fullmatch(units) is not None


def _sns_publish_problems(params: dict[str, Any]) -> list[str]:
    """SNS Publish limits stated in its API reference but absent from botocore's model."""
    problems = []
    subject = params.get("Subject")
    if isinstance(subject, str) and (
        len(subject) > SNS_SUBJECT_MAX_CHARS
        or any(unicodedata.category(char) == "Cc" for char in subject)
    ):
        problems.append(
            f"Subject: {subject!r} must be at most {SNS_SUBJECT_MAX_CHARS} characters with no "
            "line break or control character"
        )
    message = params.get("Message")
    if isinstance(message, str) and len(message.encode()) > SNS_MESSAGE_MAX_BYTES:
        problems.append(
            f"Message: {len(message.encode())} bytes, more than the maximum {SNS_MESSAGE_MAX_BYTES}"
        )
    return problems
