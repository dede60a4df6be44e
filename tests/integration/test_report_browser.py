"""A generated report in a real browser (Debian's Chromium, headless): it loads without console
errors, every image is really there, and a screenshot is kept in artifacts/ for a person to look at."""

from pathlib import Path

import pytest

from tests.conftest import ROOT, bench

pytestmark = pytest.mark.integration
ARTIFACTS = ROOT / "artifacts"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1100,1600")


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService("/usr/bin/chromedriver"))
    yield driver
    driver.quit()


IMAGES = ("return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth, "
          "i.getBoundingClientRect().top])")


def check_page(driver, page: Path, screenshot: str, first_image: str | None = None) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.as_uri())
    # in a fresh-check, get() once returned with the history page's images not yet complete (complete
    # false, some with their width already known): wait until each has finished, loaded or broken
    WebDriverWait(driver, 60, poll_frequency=0.05).until(
        lambda d: all(complete for _, complete, _, _ in d.execute_script(IMAGES)))
    images = driver.execute_script(IMAGES)
    assert images, "the page shows no image"
    if first_image:  # and on the first screen of a laptop (900 px), above any table
        src, _, _, top = images[0]
        assert src == first_image and top < 900, images[0]
    assert all(complete and width > 0 for _, complete, width, _ in images), images
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / screenshot))


def bench_ok(*args) -> str:
    out = bench(*args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_run_report_and_history_in_a_real_browser(tmp_path, browser):
    results, reports = tmp_path / "results", tmp_path / "reports"
    for _ in range(2):
        bench_ok("run", "--suite", "startup", "--runners", "process,chroot,container,bwrap,vm", "--repeat", "5",
              "--results-dir", str(results), "--reports-dir", str(reports))
    first, second = sorted(p for p in results.iterdir() if p.name[0].isdigit())
    check_page(browser, reports / second.name / "index.html", "report.png", first_image="ladder.png")
    bench_ok("report", str(second), "--baseline", str(first), "--out", str(tmp_path / "vs"))
    check_page(browser, tmp_path / "vs" / "index.html", "report-vs-baseline.png")
    bench_ok("report", str(first), str(second), "--out", str(tmp_path / "history"))
    check_page(browser, tmp_path / "history" / "index.html", "history.png")


def test_the_headline_reads_in_a_1280_pixel_window(tmp_path, browser):
    """Fourteen runners' columns fell off a 1280-pixel window: one table per family now, each of
    which fits, and so does the page (no sideways scrolling). The kept run with the most runners."""
    import json

    run = max((ROOT / "docs" / "runs").iterdir(),
              key=lambda d: len(json.loads((d / "meta.json").read_text()).get("runners", {})))
    bench_ok("report", str(run), "--out", str(tmp_path / "report"))
    browser.set_window_size(1280, 1600)
    browser.get((tmp_path / "report" / "index.html").as_uri())
    width = browser.execute_script("return window.innerWidth")
    tables = browser.execute_script("return Array.from(document.querySelectorAll('table.headline'))"
                                    ".map(t => [t.caption.textContent, t.getBoundingClientRect().right])")
    assert len(tables) >= 3, tables  # process-like, containers, sandboxes, VMs: those the run has
    assert all(right <= width for _, right in tables), (width, tables)
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "headline-1280.png"))
