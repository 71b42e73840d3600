"""The labeling page as a person uses it, driven through Selenium (for tests and screenshots)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = (
    ""
    if CHROMIUM.exists() and CHROMEDRIVER.exists()
    else f"browser tests need {CHROMIUM} and {CHROMEDRIVER}: run ./setup.sh --dev as root, or "
    "apt-get install --no-install-recommends chromium chromium-driver"
)
"""Why the browser tests cannot run here ("" when they can)."""
ENTER = Keys.ENTER


def start_chromium(window: tuple[int, int] = (1280, 800)) -> Any:
    """Headless Debian Chromium through its own driver; Selenium Manager never goes online."""
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", f"--window-size={window[0]},{window[1]}"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.set_script_timeout(10)
    return browser


class LabelPage:
    """The labeling page as a person uses it: mouse drags in image pixels, keys, buttons.

    Box coordinates in the page's state are image pixels; a drag is given in image pixels and
    turned into screen offsets from the stage's centre with the page's current zoom.
    """

    def __init__(self, driver: Any, url: str) -> None:
        self.driver = driver
        self.url = url

    def open(self, name: str = "Ada") -> None:
        """Load the page; name the worker when the page asks."""
        self.driver.get("about:blank")
        self.driver.get(self.url)
        self.wait(
            lambda: (
                self.js("return document.getElementById('name-dialog').open")
                or self.js("return !!window.boxloopApp && window.boxloopApp.ready()")
            ),
            "the page to ask a name or show an image",
        )
        if self.js("return document.getElementById('name-dialog').open"):
            self.driver.find_element(By.ID, "name-input").send_keys(name + "\n")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def state(self) -> dict[str, Any]:
        return self.js("return window.boxloopApp.state()")

    def wait(self, condition: Callable[[], Any], what: str, timeout_s: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; page error: {self.error()!r}")

    def wait_task(self, not_task: str | None = None, timeout_s: float = 10.0) -> dict[str, Any]:
        """Wait until an image other than ``not_task`` is shown and loaded; its state."""

        def shown() -> dict[str, Any] | None:
            st = self.state()
            ready = self.js("return window.boxloopApp.ready()")
            return st if ready and st["task"] and st["task"] != not_task else None

        return self.wait(shown, f"an image other than {not_task}", timeout_s)

    def message(self) -> str:
        return self.driver.find_element(By.ID, "message-text").text

    def error(self) -> str:
        banner = self.driver.find_element(By.ID, "error")
        return banner.text if banner.is_displayed() else ""

    def _client(self, x: float, y: float) -> tuple[int, int]:
        """Image pixel (x, y) -> viewport (client) coordinates at the page's zoom and pan."""
        left, top = self.js(
            "const r = document.getElementById('stage').getBoundingClientRect();"
            "return [r.left, r.top];"
        )
        scale = self.state()["scale"]
        return round(left + x * scale), round(top + y * scale)

    def drag(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Press at image pixel (x0, y0), move to (x1, y1) in two steps, release.

        Positions are viewport coordinates: an element-relative move would start from the
        centre of the stage's visible part, which is not its centre once zoomed in.
        """
        points = [self._client(x, y) for x, y in ((x0, y0), ((x0 + x1) / 2, (y0 + y1) / 2))]
        points.append(self._client(x1, y1))
        builder = ActionBuilder(self.driver, duration=0)
        pointer = builder.pointer_action
        pointer.move_to_location(*points[0])
        pointer.pointer_down()
        for point in points[1:]:
            pointer.move_to_location(*point)
        pointer.pointer_up()
        builder.perform()

    def click(self, x: float, y: float) -> None:
        """A click at image pixel (x, y) (selects the box there)."""
        builder = ActionBuilder(self.driver, duration=0)
        builder.pointer_action.move_to_location(*self._client(x, y))
        builder.pointer_action.click()
        builder.perform()

    def keys(self, *keys: str) -> None:
        ActionChains(self.driver).send_keys(*keys).perform()

    def ctrl(self, key: str) -> None:
        ActionChains(self.driver).key_down(Keys.CONTROL).send_keys(key).key_up(
            Keys.CONTROL
        ).perform()
