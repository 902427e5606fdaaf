"""The leaderboard site in a real headless Chromium, offline: every page opens from disk with no
console error, plots exactly the records its table lists, shows a record on hover, and filters rows.

Skips only where no browser can be had (no playwright, no Chromium binary); .ci/run installs chromium.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.leaderboards.baselines import BASELINES
from benchmark.leaderboards.browser import offline_browser, open_page, screenshot, why_no_browser
from benchmark.leaderboards.plots import host_label
from benchmark.leaderboards.site import generate_site, task_points
from benchmark.leaderboards.store import load_records
from benchmark.leaderboards.tables import TASKS, split_records
from benchmark.runs.records import REPO_ROOT

RECORDS = REPO_ROOT / "leaderboards" / "records"
pytestmark = pytest.mark.requires("chromium", why_no_browser() and f"no browser: {why_no_browser()}")

POINTS = "document.querySelectorAll('.scatterlayer .points path.point').length"
ROWS = "Array.from(document.querySelectorAll('#records tbody tr')).filter(r => !r.hidden).length"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    for name, data in generate_site(load_records(RECORDS)).items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def browser():
    with offline_browser() as context:
        yield context


def expected_points() -> dict[str, int]:
    """What each page covers, counted from the records: every latency record on the latency page; on a
    task page, the latency records with an accuracy to pair with plus the reported rows with a latency."""
    kinds = split_records(load_records(RECORDS))
    counts = {task: len(task_points(task, kinds, BASELINES)) for task in TASKS}
    counts["latency"] = len(kinds["latency"])
    return counts


def test_every_page_plots_every_record_offline(site: Path, browser) -> None:
    expected = expected_points()
    assert expected["latency"] >= 60 and all(expected[task] > 0 for task in TASKS)
    for name, count in expected.items():
        page, errors = open_page(browser, site / f"{name}.html")
        assert errors == [], f"{name}.html: {errors}"
        assert page.evaluate(POINTS) == count, name
        assert page.evaluate(ROWS) == count, name
        page.close()


def test_hover_shows_the_record(site: Path, browser) -> None:
    page, _ = open_page(browser, site / "detection.html")
    point = page.locator(".scatterlayer .points path.point").first
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector(".hoverlayer .hovertext")
    text = page.locator(".hoverlayer .hovertext").first.text_content()
    assert "p50" in text and "commit" in text and "host/device" in text and "mAP" in text
    page.close()


def test_filter_hides_other_hosts(site: Path, browser) -> None:
    page, _ = open_page(browser, site / "latency.html")
    select = page.locator('select[data-column="8"]')
    hosts = [v for v in select.locator("option").evaluate_all("os => os.map(o => o.value)") if v]
    assert len(hosts) >= 2
    select.select_option(hosts[0])
    shown = page.evaluate(
        "Array.from(document.querySelectorAll('#records tbody tr')).filter(r => !r.hidden).map(r => r.cells[8].textContent)"
    )
    records = load_records(RECORDS)
    assert shown and set(shown) == {hosts[0]}
    assert len(shown) == sum(1 for r in records if r["kind"] == "latency" and host_label(r) == hosts[0])
    assert page.locator("#shown").text_content() == str(len(shown))
    page.close()


def test_screenshot_of_the_latency_page(site: Path, browser, tmp_path: Path) -> None:
    path = screenshot(site, tmp_path / "site-latency.png", context=browser)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
