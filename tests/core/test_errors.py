from __future__ import annotations

import pickle

import pytest

from boxloop.core.errors import (
    ConfigError,
    ManifestError,
    NothingUsableError,
    TransientServiceError,
)


@pytest.mark.parametrize(
    "error",
    [
        ManifestError("is not a number", source="m.jsonl", line=3, field="x", hint="fix it"),
        ManifestError("is empty"),
        NothingUsableError("no line is usable", source="in.manifest"),
        ConfigError(["a must be > 0", "b must be a string"]),
        TransientServiceError("ClientError: SlowDown"),
    ],
)
def test_errors_survive_pickling_whole(error: Exception) -> None:
    # GIVEN an error raised in a worker process WHEN it reaches the parent (pickled)
    copy = pickle.loads(pickle.dumps(error))
    # THEN it is the same type with the same message and fields
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
