"""The ``${Name}`` placeholders of an ASL file, which DefinitionSubstitutions fill.

One pattern for the two places that fill them: the stack (CDK's ``definition_substitutions``)
and the local engine (:func:`boxloop.local.emulator.substitute_definition`).
"""

from __future__ import annotations

import re
from typing import Final

PLACEHOLDER: Final = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
"""A placeholder; group 1 is its name."""


def placeholders(definition: str) -> set[str]:
    """The names of every placeholder ``definition`` uses."""
    return set(PLACEHOLDER.findall(definition))
