"""A headless Chromium for the leaderboard site (playwright driving the system browser), with every
non-``file://`` request refused: a page that needed the network would show it here.

Used by ``bench leaderboard --screenshot`` and tests/test_site_browser.py. ``playwright install``
downloads a browser, which CI cannot do; the Debian ``chromium`` package is driven instead through
``executable_path`` (``BENCH_CHROMIUM`` names another binary).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from backbones.errors import UserError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
VIEWPORT = {"width": 1400, "height": 1000}


def find_chromium() -> str | None:
    """The browser binary: ``$BENCH_CHROMIUM``, else the first of CANDIDATES on PATH, else None."""
    explicit = os.environ.get("BENCH_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


def why_no_browser() -> str | None:
    """Why the site cannot be opened in a browser here (no playwright, no Chromium), else None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "pip package playwright is not installed (pip install -e '.[dev]')"
    if find_chromium() is None:
        return f"no Chromium binary ({', '.join(CANDIDATES)} not on PATH, BENCH_CHROMIUM unset): apt-get install chromium"
    return None


@contextlib.contextmanager
def offline_browser(allow: str | None = None) -> Iterator[Any]:
    """A playwright browser context whose requests other than ``file://`` (and URLs starting with
    ``allow``, e.g. a local server of the docs) are aborted."""
    reason = why_no_browser()
    if reason:
        raise UserError(f"--screenshot: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(),
            args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-sandbox", "--disable-gpu"],
        )
        try:
            context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
            allowed = ("file:", allow) if allow else ("file:",)
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(allowed)
                          else route.abort())  # fmt: skip
            yield context
        finally:
            browser.close()


def open_page(context: Any, path: Path | str, fragment: str = "") -> tuple[Any, list[str]]:
    """Open a site page from disk (or a URL); returns (page, console and page errors seen while loading)."""
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url}"))
    url = path if isinstance(path, str) else path.resolve().as_uri()
    page.goto(url + fragment, wait_until="load")
    page.wait_for_function("Array.from(document.querySelectorAll('.plotly-graph-div')).every(d => d._fullLayout)")
    return page, errors


def screenshot(site: Path, output: Path, name: str = "latency.html", context: Any = None) -> Path:
    """A PNG of one site page's first screen (its charts), opened offline (in ``context`` when given)."""
    if not (site / name).is_file():
        raise UserError(f"--screenshot: {site / name} does not exist (build the site first)")
    if context is None:
        with offline_browser() as own:
            return screenshot(site, output, name, own)
    page, errors = open_page(context, site / name)
    if errors:
        raise UserError(f"--screenshot: {site / name} logged errors in Chromium: {errors[0]}")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    page.screenshot(path=str(tmp), type="png")
    page.close()
    tmp.replace(output)
    return output


# The screenshots committed beside the plots (leaderboards/plots/): page, fragment, element.
SCREENSHOTS = {
    "site-headline-classification.png": ("classification.html", "", "#headline"),
    "site-headline-latency.png": ("latency.html", "", "#headline"),
    "site-compare.png": ("compare.html", "#classification:classification-mnv2-1_0-224,"
                        "classification-mnv2-1_0-224-mobilenet-v2-1_0-224-quant,classification-mnv1-1_0-224", "body"),
}


def element_screenshots(site: Path, folder: Path, context: Any) -> list[Path]:
    """PNGs of the site's headline tables and its compare view (``SCREENSHOTS``), taken offline."""
    written = []
    for name, (page_name, fragment, selector) in SCREENSHOTS.items():
        page, errors = open_page(context, site / page_name, fragment)
        if errors:
            raise UserError(f"screenshot: {site / page_name} logged errors in Chromium: {errors[0]}")
        output = folder / name
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.tmp")
        page.locator(selector).first.screenshot(path=str(tmp), type="png")
        page.close()
        tmp.replace(output)
        written.append(output)
    return written
