"""boxloop's own labeling API: one implementation, hosted locally or on AWS.

Pure standard library plus ``boxloop.core`` (no boto3, no ``http.server``), so the local
``ThreadingHTTPServer`` (`boxloop.local.labeling_server`) and the AWS Lambda handlers share
it. ``docs/labeling-api.md`` is the contract; `LabelingApi` implements every route over a
`TaskStore` (`JournalStore` locally). ``static/`` holds the web app.
"""

from __future__ import annotations

from boxloop.labeling.api import DEFAULT_LEASE_S, LabelingApi
from boxloop.labeling.auth import ImageSigner, TokenAuth
from boxloop.labeling.contract import (
    API_BASE,
    MAX_BODY_BYTES,
    Answer,
    AnswerBox,
    ApiError,
    ApiRequest,
    ApiResponse,
    Counts,
    JobInfo,
    Lease,
    PreBox,
    Principal,
    TaskInfo,
)
from boxloop.labeling.effort import EffortSummary
from boxloop.labeling.output import label_of
from boxloop.labeling.store import JOURNAL_FILE, Claim, JournalStore, TaskStore

__all__ = [
    "API_BASE",
    "DEFAULT_LEASE_S",
    "JOURNAL_FILE",
    "MAX_BODY_BYTES",
    "Answer",
    "AnswerBox",
    "ApiError",
    "ApiRequest",
    "ApiResponse",
    "Claim",
    "Counts",
    "EffortSummary",
    "ImageSigner",
    "JobInfo",
    "JournalStore",
    "LabelingApi",
    "Lease",
    "PreBox",
    "Principal",
    "TaskInfo",
    "TaskStore",
    "TokenAuth",
    "label_of",
]
