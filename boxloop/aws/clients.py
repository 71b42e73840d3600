"""boto3 client getters, called inside an invocation so that moto and region settings apply."""

from __future__ import annotations

from typing import Any


def client(service: str, **kwargs: Any) -> Any:
    """A boto3 client for ``service``, created now (never at import time)."""
    import boto3  # local import: boxloop.aws must import without boto3 for core-only users

    return boto3.client(service, **kwargs)
