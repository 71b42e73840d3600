"""Headless Chromium for the labeling app's browser tests.

The browser is Debian's ``chromium`` with its own ``chromium-driver`` (``./setup.sh --dev``
installs both as root), so their versions always match and nothing is downloaded:
``SE_OFFLINE=true`` keeps Selenium Manager from looking for a browser or driver online.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ._page import MISSING, LabelPage, start_chromium


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    """One headless Chromium per test module (starting one takes about a second)."""
    if MISSING:
        pytest.skip(MISSING)
    browser = start_chromium()
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def label_page(driver: Any) -> Callable[[str], LabelPage]:
    """A `LabelPage` for a URL on the module's browser (each server port is its own origin)."""

    def make(url: str) -> LabelPage:
        return LabelPage(driver, url)

    return make
