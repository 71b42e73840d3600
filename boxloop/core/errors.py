"""Error types; class names are API: Lambda reports them, the ASL's ErrorEquals matches them.

Two kinds, which ``statemachine/boxloop.asl.json`` treats differently:

- terminal: ``BoxloopError`` and every subclass (bad input, bad configuration). Running the step
  again cannot help, so every Lambda task names them in a ``Catch`` that goes straight to
  ``NotifyFailure``, and no ``Retry`` names them.
- transient: ``TransientServiceError``, an AWS call that failed after botocore's own retries in
  a way worth trying again later (throttling, a 5xx, a timeout). Every Lambda task retries it
  with backoff, as it retries ``Lambda.TooManyRequestsException``.
"""

from __future__ import annotations

from typing import Any


class BoxloopError(Exception):
    """Base class for every error boxloop raises about its input or configuration."""


class ManifestError(BoxloopError, ValueError):
    """A manifest line cannot be used as it is."""

    def __init__(
        self,
        reason: str,
        *,
        source: str = "<manifest>",
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.field = field
        self.hint = hint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """`source:line: field reason (fix: hint)`, the way editors and compilers print it."""
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.detail}"

    @property
    def detail(self) -> str:
        """The message without its location: `field reason (fix: hint)`."""
        what = f"{self.field} {self.reason}" if self.field else self.reason
        fix = f" (fix: {self.hint})" if self.hint else ""
        return f"{what}{fix}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled with its fields, not its message: an error raised in a worker process (the
        # post-processing job scores chunks in several) must reach the parent unchanged.
        return (_rebuild, (type(self), self.reason, self.source, self.line, self.field, self.hint))

    def at(self, *, source: str, line: int) -> ManifestError:
        """The same error located at a manifest line (parsers raise before they know the line)."""
        return ManifestError(
            self.reason, source=source, line=line, field=self.field, hint=self.hint
        )


class BoxError(BoxloopError, ValueError):
    """A box has impossible coordinates, class id or score."""


class ConfigError(BoxloopError, ValueError):
    """One or more configuration values are invalid; the message lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"- {p}" for p in self.problems))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems,))


class NothingUsableError(ManifestError):
    """Every line of a manifest was bad: there is nothing to continue with."""


class TransientServiceError(Exception):
    """An AWS call failed transiently (throttled, 5xx, timed out) after botocore's retries."""


def _rebuild(
    cls: type[ManifestError],
    reason: str,
    source: str,
    line: int | None,
    field: str | None,
    hint: str | None,
) -> ManifestError:
    """Unpickle a ManifestError (or subclass) from its fields."""
    return cls(reason, source=source, line=line, field=field, hint=hint)
