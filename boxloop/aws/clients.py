"""boto3 client getters, called inside an invocation so that moto and region settings apply.

Clients are cached per (service, region, credentials) because creating one costs ~0.1 s and a
step makes one call per object it streams. ``clear()`` drops the cache: the local engine and
the tests call it whenever they start or stop moto, since a client created outside a mock
would escape it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_CACHE: dict[tuple[str, str, str, str], Any] = {}
_LOCK = threading.Lock()


def client(service: str, **kwargs: Any) -> Any:
    """A boto3 client for ``service`` (cached; extra ``kwargs`` bypass the cache)."""
    import boto3  # local import: boxloop.aws must import without boto3 for core-only users

    if kwargs:
        return boto3.client(service, **kwargs)
    key = (
        service,
        os.environ.get("AWS_DEFAULT_REGION", ""),
        os.environ.get("AWS_ACCESS_KEY_ID", ""),
        os.environ.get("AWS_PROFILE", ""),
    )
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = boto3.client(service)
        return _CACHE[key]


def clear() -> None:
    """Forget every cached client."""
    with _LOCK:
        _CACHE.clear()
