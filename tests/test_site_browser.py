"""The leaderboard site in a real headless Chromium, offline: every page opens from disk with no
console error, plots exactly the records its table lists, shows a record on hover, and filters rows;
its headline rows have anchors, the compare view shows two to five models side by side; and the
documentation site (built strict, served on 127.0.0.1) opens its index and a guide with no error.

Skips only where no browser can be had (no playwright, no Chromium binary); .ci/run installs chromium.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmark.leaderboards.baselines import BASELINES
from benchmark.leaderboards.browser import (
    SCREENSHOTS,
    element_screenshots,
    offline_browser,
    open_page,
    screenshot,
    why_no_browser,
)
from benchmark.leaderboards.hosts import machine_label as host_label
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


# -- the headline tables, the compare view and the documentation site ------------------------------


def test_headline_rows_have_stable_anchors(site: Path, browser) -> None:
    page, errors = open_page(browser, site / "classification.html", "#classification-mnv2-1_0-224")
    assert errors == []
    assert page.evaluate("document.querySelectorAll('#headline tbody tr').length") > 30
    # The fragment lands on that row: it is the row the browser scrolled to (inside the viewport).
    top = page.evaluate("document.getElementById('classification-mnv2-1_0-224').getBoundingClientRect().top")
    assert 0 <= top < 200
    page.close()


def test_compare_view_puts_two_to_five_models_side_by_side(site: Path, browser) -> None:
    ids = ["classification-mnv2-1_0-224", "classification-mnv1-1_0-224"]
    page, errors = open_page(browser, site / "compare.html", "#classification:" + ",".join(ids))
    assert errors == []
    headers = page.evaluate("Array.from(document.querySelectorAll('#comparison tr:first-child th')).map(t => t.textContent)")
    assert headers == ["", "mnv1 1.0 @224", "mnv2 1.0 @224"]  # in the list's order
    row = page.evaluate("Array.from(document.querySelectorAll('#comparison tr')).find(r => r.cells[0].textContent"
                        " === 'reported').textContent")  # fmt: skip
    assert "72.0 (V2 T4)" in row and "70.6 (V2 T4, V1 T6, V1 T7, V1 T8)" in row
    boxes = page.locator("#models input")
    for index in range(boxes.count()):  # three more: five chosen, the rest cannot be ticked
        if boxes.nth(index).get_attribute("value") not in ids and len(ids) < 5:
            boxes.nth(index).check()
            ids.append(boxes.nth(index).get_attribute("value"))
    assert page.evaluate("document.querySelectorAll('#comparison tr:first-child th').length") == 6
    assert page.evaluate("Array.from(document.querySelectorAll('#models input')).filter(i => i.disabled).length") == (
        boxes.count() - 5)
    task, chosen = page.evaluate("location.hash").split(":")
    assert task == "#classification" and sorted(chosen.split(",")) == sorted(ids)  # the choice is a link
    page.close()


def test_site_screenshots_of_the_headline_tables_and_the_compare_view(site: Path, browser, tmp_path: Path) -> None:
    written = element_screenshots(site, tmp_path, browser)
    assert sorted(p.name for p in written) == sorted(SCREENSHOTS)
    for path in written:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
        assert (REPO_ROOT / "leaderboards" / "plots" / path.name).is_file()  # committed beside the plots


@pytest.fixture(scope="module")
def docs_site(tmp_path_factory: pytest.TempPathFactory):
    """The documentation built in strict mode and served over http on 127.0.0.1 (Material's search
    worker needs http, not file://)."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]')")
    import functools
    import http.server
    import subprocess
    import sys
    import threading

    out = tmp_path_factory.mktemp("docs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", out
    finally:
        server.shutdown()
        server.server_close()


def test_docs_index_and_a_guide_open_without_errors(docs_site, browser) -> None:
    url, out = docs_site
    browser.route(f"{url}**", lambda route: route.continue_())  # the local docs server, nothing else
    try:
        for path, heading in (("", "mobile-vision-bench"), ("guides/devices/", "On a phone or a board")):
            page, errors = open_page(browser, url + path)
            page.wait_for_load_state("networkidle")
            assert errors == [], f"{path}: {errors}"
            assert page.locator("article h1").first.text_content().strip().rstrip("¶") == heading
            page.close()
    finally:
        browser.unroute(f"{url}**")
    # The CLI reference was generated from the parsers at build time: every subcommand is on it.
    cli = (out / "reference" / "cli" / "index.html").read_text()
    from benchmark.cli import build_parser

    names = next(a for a in build_parser("classification")._actions if a.choices and "run" in a.choices).choices
    assert all(f"bench {name}" in cli for name in names)
    assert (out / "leaderboards" / "site" / "compare.html").is_file()  # the leaderboard site is published with them
