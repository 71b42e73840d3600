"""The record of every moto attribute we replaced, so that each patch can be undone exactly."""

from __future__ import annotations

import threading
from typing import Any, Final

import moto

#: The one moto release these patches were written against and tested with.
MOTO_VERSION: Final = "5.2.5"

_MISSING: Final = object()  # the attribute did not exist before we set it (a method we added)


class MotoVersionError(RuntimeError):
    """The installed moto is not the release the emulator's patches were written for."""


def check_moto_version() -> None:
    """Refuse to patch any moto other than :data:`MOTO_VERSION`.

    Raises:
        MotoVersionError: moto is another version. The patches replace private moto functions
            whose names and signatures change between releases without notice.
    """
    installed = getattr(moto, "__version__", "unknown")
    if installed != MOTO_VERSION:
        raise MotoVersionError(
            f"boxloop.local.emulator needs moto=={MOTO_VERSION}, found moto=={installed}: "
            "the patches touch moto internals; update them and the pin together "
            "(pyproject.toml extra 'local', then run tests/local/test_moto_patches.py)"
        )


class PatchLedger:
    """Sets attributes on moto classes and modules and remembers what was there before.

    Setting the same attribute twice keeps the first original, so applying twice and restoring
    once gives moto back untouched.
    """

    def __init__(self) -> None:
        self._originals: dict[tuple[int, str], tuple[Any, str, Any]] = {}
        self._lock = threading.Lock()

    def set(self, owner: Any, name: str, value: Any) -> None:
        """Replace ``owner.name`` with ``value``, remembering the original the first time."""
        with self._lock:
            key = (id(owner), name)
            if key not in self._originals:
                self._originals[key] = (owner, name, vars(owner).get(name, _MISSING))
            setattr(owner, name, value)

    def original(self, owner: Any, name: str) -> Any:
        """The value ``owner.name`` had before we patched it (the current value if unpatched)."""
        saved = self._originals.get((id(owner), name))
        if saved is None or saved[2] is _MISSING:
            return getattr(owner, name)
        return saved[2]

    def restore(self, owner: Any, name: str) -> None:
        """Put back the original ``owner.name`` (or delete what we added); no-op if unpatched."""
        with self._lock:
            saved = self._originals.pop((id(owner), name), None)
        if saved is not None:
            _put_back(*saved)

    def restore_all(self) -> None:
        """Undo every patch, most recent first."""
        with self._lock:
            saved = list(self._originals.values())
            self._originals.clear()
        for owner, name, value in reversed(saved):
            _put_back(owner, name, value)

    def is_patched(self, owner: Any, name: str) -> bool:
        """Whether ``owner.name`` is currently replaced by us."""
        return (id(owner), name) in self._originals


def _put_back(owner: Any, name: str, value: Any) -> None:
    if value is _MISSING:
        delattr(owner, name)
    else:
        setattr(owner, name, value)
