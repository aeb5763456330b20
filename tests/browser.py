"""A real browser on the MLflow UI: `mlflow ui` on 127.0.0.1 and headless Debian Chromium.

`start_mlflow_ui()` starts ``mlflow ui`` over a backend store (the process group is the
test's, as in `tests/mlflow_server.py`, whose start/poll/stop it reuses); `make_driver()`
opens Debian's Chromium through Debian's ChromeDriver with the flags this network needs;
`wait_for_text()` polls what the page *renders* (``document.body.innerText``), because the
UI is a React app that fills the page long after ``driver.get`` returns; `screenshot()`
saves a PNG under ``test-output/screenshots/``.

MLflow 3.17's UI routes are hash routes (read off its bundle, `mlflow/server/js/build`):
``#/experiments/<id>/runs`` (the runs table), ``#/experiments/<id>/models`` (logged
models), ``#/experiments/<id>/runs/<run_id>`` (overview) plus ``/model-metrics``,
``/system-metrics``, ``/artifacts``; ``#/models``, ``#/models/<name>`` and
``#/models/<name>/versions/<v>``. Experiment pages take ``?workflowType=machine_learning``
(`MODEL_TRAINING`); without it a fresh browser lands on the GenAI overview.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tests.mlflow_server import REPO, MlflowServer

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = REPO / "test-output" / "screenshots"
WINDOW = (1600, 1000)
# Without these, Chromium dials Google's hosts at start and hangs on this closed network.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
RENDERED_CHARS_SHOWN = 1500
# A fresh profile opens an experiment without an `mlflow.experimentKind` tag in the UI's GenAI
# workflow (an overview of traces); this asks for the "Model training" one (runs, charts).
MODEL_TRAINING = "workflowType=machine_learning"


def browser_missing() -> str | None:
    """None when Debian's Chromium and ChromeDriver are installed, else what is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        return f"{' and '.join(missing)} missing (apt-get install chromium chromium-driver)"
    return None


class MlflowUi(MlflowServer):
    """`mlflow ui` instead of `mlflow server`: same process-group start, poll and stop."""

    def __init__(
        self, backend_uri: str, workdir: Path, *, artifacts_destination: str | None = None
    ) -> None:
        super().__init__(backend_uri, workdir)
        self.artifacts_destination = artifacts_destination

    def _command(self) -> tuple[list[str], dict[str, str]]:
        _, env = super()._command()
        # MLflow 3 starts a job runner and eight huey consumers (1.7 GB, ~8 s of CPU on two
        # cores) for GenAI scoring and trace archival; browsing the UI needs none of them.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", self.backend_uri,
               "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]  # fmt: skip
        if self.artifacts_destination is not None:
            cmd += ["--artifacts-destination", self.artifacts_destination]
        return cmd, env


def start_mlflow_ui(
    backend_store_uri: str,
    *,
    artifacts_destination: str | None = None,
    workdir: Path | None = None,
    timeout_s: float = 120.0,
) -> tuple[str, Callable[[], None]]:
    """Start ``mlflow ui`` on a free port of 127.0.0.1; return its URL and a stop function.

    Returns once ``/health`` answers (polled with a deadline). ``stop()`` SIGTERMs exactly
    that process group (SIGKILL after 30 s). The server's log is ``workdir/server-<port>.log``.

    Example:
        >>> url, stop = start_mlflow_ui("sqlite:////tmp/x/mlflow.db")  # doctest: +SKIP
        >>> stop()  # doctest: +SKIP
    """
    folder = workdir or Path(tempfile.mkdtemp(prefix="mlflow_ui_"))
    ui = MlflowUi(backend_store_uri, folder, artifacts_destination=artifacts_destination)
    ui.start(timeout_s)
    return ui.url, ui.stop


def make_driver(out_dir: Path) -> WebDriver:
    """Headless Debian Chromium, window 1600x1000, with a fresh profile.

    The profile is ``out_dir/chromium-profile`` (emptied first); ChromeDriver's log is
    ``out_dir/chromedriver.log``.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(out_dir) / "chromium-profile"
    shutil.rmtree(profile, ignore_errors=True)
    profile.mkdir(parents=True)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    service = Service(str(CHROMEDRIVER), log_output=str(Path(out_dir) / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_window_size(*WINDOW)
    driver.set_page_load_timeout(60)
    return driver


def open_route(driver: WebDriver, base_url: str, route: str) -> None:
    """Load ``base_url/#/route`` as a fresh document.

    Going through ``about:blank`` first matters: a bare hash change keeps the previous
    page rendered until React swaps it, so a text the two pages share would match early.
    """
    driver.get("about:blank")
    driver.get(f"{base_url}/#/{route.lstrip('#/')}")


def rendered_text(driver: WebDriver) -> str:
    """What the page shows now: ``document.body.innerText`` (empty before the body exists),
    with no-break spaces as plain spaces (the UI writes ``@\u00a0production``)."""
    text = driver.execute_script("return document.body ? document.body.innerText : '';")
    return str(text or "").replace("\u00a0", " ")


def wait_until(
    driver: WebDriver, condition: Callable[[], T | None], what: str, timeout: float = 30
) -> T:
    """Poll ``condition()`` until it returns something truthy; return that.

    An element that is not there yet, that React replaced between finding and using it
    (stale), or that something still covers counts as "not yet".

    Raises:
        AssertionError: nothing truthy within ``timeout`` seconds; the message says
            ``what`` was awaited, shows the URL and the first 1500 characters rendered,
            and the page is saved as ``test-output/screenshots/failed-<test name>.png``.
    """
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        ElementNotInteractableException,
        NoSuchElementException,
        StaleElementReferenceException,
    )

    not_yet = (
        ElementClickInterceptedException,
        ElementNotInteractableException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = condition()
        except not_yet:
            found = None
        if found:
            return found
        if time.monotonic() >= deadline:
            shown = rendered_text(driver)
            test = os.environ.get("PYTEST_CURRENT_TEST", "wait").split("::")[-1].split(" ")[0]
            where = screenshot(driver, f"failed-{test}")
            raise AssertionError(
                f"{what} not rendered within {timeout}s at {driver.current_url} "
                f"(screenshot: {where}); the page showed:\n{shown[:RENDERED_CHARS_SHOWN]}"
            )
        time.sleep(0.25)  # polling the rendered page with a deadline


def wait_for_text(driver: WebDriver, text: str, timeout: float = 30) -> str:
    """Poll the rendered page until ``text`` appears; return the page text then.

    Raises:
        AssertionError: as `wait_until`, showing the first 1500 characters rendered.
    """

    def page_with_text() -> str | None:
        shown = rendered_text(driver)
        return shown if text in shown else None

    return wait_until(driver, page_with_text, repr(text), timeout)


def wait_for_element(driver: WebDriver, xpath: str, timeout: float = 30) -> WebElement:
    """Poll until an element matching ``xpath`` is displayed; return it."""

    def shown() -> WebElement | None:
        return next((e for e in driver.find_elements("xpath", xpath) if e.is_displayed()), None)

    return wait_until(driver, shown, f"an element {xpath}", timeout)


def click(driver: WebDriver, xpath: str, timeout: float = 30) -> None:
    """Click the displayed element matching ``xpath`` once it exists and takes the click."""

    def clicked() -> bool:
        shown = [e for e in driver.find_elements("xpath", xpath) if e.is_displayed()]
        if shown:
            shown[0].click()
        return bool(shown)

    wait_until(driver, clicked, f"a clickable {xpath}", timeout)


def type_into(driver: WebDriver, xpath: str, text: str, timeout: float = 30) -> None:
    """Replace the value of the input matching ``xpath`` with ``text``, as a user types it."""
    from selenium.webdriver.common.keys import Keys

    field = wait_for_element(driver, xpath, timeout)
    field.send_keys(Keys.CONTROL, "a")  # select what is there (a React input ignores clear())
    field.send_keys(Keys.BACK_SPACE, text)


def close_dialogs(driver: WebDriver, timeout: float = 10) -> None:
    """Close the modal dialogs on the page (the UI's promotions) and wait until they are gone."""

    def open_dialogs() -> list[WebElement]:
        return [
            d for d in driver.find_elements("css selector", "[role=dialog]") if d.is_displayed()
        ]

    if open_dialogs():
        click(driver, "//*[@role='dialog']//button[@aria-label='Close']", timeout)
    wait_until(driver, lambda: not open_dialogs(), "the dialogs closing", timeout)


def screenshot(driver: WebDriver, name: str) -> Path:
    """Save the viewport as ``test-output/screenshots/<name>.png`` (under the repo root)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if not driver.save_screenshot(str(path)):
        raise AssertionError(f"Chromium could not save a screenshot to {path}")
    return path
