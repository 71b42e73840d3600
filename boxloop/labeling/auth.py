"""Who may call the API: the local bearer token and worker header, and signed image URLs.

A host gives `LabelingApi` an authenticator: a callable from `ApiRequest` to `Principal` that
raises ``unauthorized``. Locally that is `TokenAuth` (the random per-run token of the printed
URL plus the page's ``X-Boxloop-Worker`` id); on AWS the Lambda host reads the JWT claims API
Gateway has checked. Images load through ``<img src>``, which sends no header, so their URLs
carry an HMAC signature instead (`ImageSigner`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import TYPE_CHECKING

from boxloop.labeling.contract import WORKER_HEADER, ApiError, Principal

if TYPE_CHECKING:
    from collections.abc import Callable

    from boxloop.labeling.contract import ApiRequest

WORKER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IMAGE_URL_TTL_S = 3600


def worker_from_header(request: ApiRequest) -> str:
    """The page's worker id from ``X-Boxloop-Worker``.

    Raises:
        ApiError: ``bad_request`` when missing or malformed.
    """
    worker = request.headers.get(WORKER_HEADER, "")
    if not WORKER_ID_RE.match(worker):
        raise ApiError(
            "bad_request",
            "the X-Boxloop-Worker header must carry the page's worker id (1-64 letters, "
            "digits, _ or -); reload the page",
            "X-Boxloop-Worker",
        )
    return worker


class TokenAuth:
    """Bearer-token authentication with the worker id from the ``X-Boxloop-Worker`` header."""

    def __init__(self, token: str) -> None:
        """``token``: the run's secret (``secrets.token_urlsafe``)."""
        if len(token) < 16:
            raise ValueError("the labeling token must be at least 16 characters")
        self._expected = f"Bearer {token}".encode()

    def __call__(self, request: ApiRequest) -> Principal:
        """The caller, or ``unauthorized``.

        Raises:
            ApiError: ``unauthorized`` (wrong or missing token), ``bad_request`` (worker id).
        """
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, self._expected):
            raise ApiError(
                "unauthorized",
                "missing or wrong token: open the URL the run printed (it ends in #token=...)",
            )
        return Principal(worker_from_header(request))


class ImageSigner:
    """Signs and checks ``/api/v1/images/<task_id>?exp=&sig=`` URLs with a run key."""

    def __init__(
        self, key: bytes, *, ttl_s: int = IMAGE_URL_TTL_S, clock: Callable[[], float] = time.time
    ) -> None:
        """``key``: a random secret of the run; ``ttl_s``: how long a URL stays valid."""
        self._key = key
        self.ttl_s = ttl_s
        self._clock = clock

    def _sig(self, task_id: str, exp: int) -> str:
        return hmac.new(self._key, f"{task_id}\n{exp}".encode(), hashlib.sha256).hexdigest()

    def url(self, base: str, task_id: str) -> str:
        """The signed URL of ``task_id``'s image under ``base`` (``/api/v1``)."""
        exp = int(self._clock()) + self.ttl_s
        return f"{base}/images/{task_id}?exp={exp}&sig={self._sig(task_id, exp)}"

    def check(self, task_id: str, exp: str, sig: str) -> None:
        """Accept a signed URL's query, or raise.

        Raises:
            ApiError: ``forbidden`` when the signature is wrong or expired.
        """
        if not exp.isdigit() or int(exp) < self._clock():
            raise ApiError("forbidden", "the image link has expired; reload the page", "exp")
        if not hmac.compare_digest(sig.encode(), self._sig(task_id, int(exp)).encode()):
            raise ApiError("forbidden", "the image link's signature is wrong", "sig")
