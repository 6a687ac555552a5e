"""The static results site (ci/build_site.sh), built from tiny runs of the
three benchmarks: every page the index links to exists, every figure is a real
PNG, and in headless Chromium every report shows its figures with no network.

The browser test needs Debian's ``chromium`` (``bash ci/run_tests.sh``
installs it when run as root); without it the test is skipped, or fails when
LEARNOPT_REQUIRE_BROWSER=1.
"""
import functools
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from benchopt.results import read_results
from benchopt_runs import ROOT, tiny_runs
from PIL import Image

BENCHMARKS = ("unrolling", "bilevel", "sparse_training")
BUILD_TIMEOUT = 300
BROWSER_TIMEOUT = 90


class Links(HTMLParser):
    """The href of every <a> and the src of every <img> of a page."""

    def __init__(self):
        super().__init__()
        self.hrefs, self.images = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))


def links(page):
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def local_target(page, url):
    """The file a relative link of ``page`` points to (an absolute URL or a
    link leaving the site fails the test)."""
    parts = urlsplit(url)
    assert not parts.scheme and not parts.netloc, f"{page} links outside the site: {url}"
    return (page.parent / unquote(parts.path)).resolve()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    results = tiny_runs(*BENCHMARKS)
    site = tmp_path_factory.mktemp("site") / "site"
    # The result files lie outside the benchmark folders: the builder finds
    # each one's benchmark from its objective.
    completed = subprocess.run(
        ["bash", str(ROOT / "ci" / "build_site.sh"), "--site", str(site), *map(str, results)],
        cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert completed.returncode == 0, (
        f"ci/build_site.sh failed:\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}")
    return site, dict(zip(BENCHMARKS, results))


def report_pages(site):
    index = site / "index.html"
    assert index.is_file(), "the site has no index.html"
    return [local_target(index, href) for href in links(index).hrefs]


def test_site_links_exist_and_figures_are_images(site):
    site, results = site
    reports = report_pages(site)
    expected = {site / f"benchmark_{name}" / "index.html" for name in BENCHMARKS}
    assert set(reports) == expected, "the index must link one report per benchmark"
    for report in reports:
        assert report.is_file(), f"the index links a missing report {report}"
        page = links(report)
        targets = [local_target(report, href) for href in page.hrefs]
        for target in targets:
            assert target.is_file(), f"{report} links a missing file {target}"
        # benchopt's interactive report, and the result file for download.
        interactive = [t for t in targets if t.suffix == ".html" and t.parent == report.parent
                       and t != report]
        assert len(interactive) == 1, f"{report} must link benchopt's report once"
        assert "plotly" in interactive[0].read_text(encoding="utf-8")
        parquets = [t for t in targets if t.suffix == ".parquet"]
        assert len(parquets) == 1, f"{report} must link its result file once"
        original = results[report.parent.name.removeprefix("benchmark_")]
        assert read_results(parquets[0]).shape == read_results(original).shape
        # Figures: at least one, each a link to itself, each a real image.
        assert page.images, f"{report} shows no figure"
        images = [local_target(report, src) for src in page.images]
        assert set(images) <= set(targets), "every figure links to its PNG file"
        on_disk = set(report.parent.glob("plots/*/*.png"))
        assert set(images) == on_disk, f"{report} does not show exactly its PNG files"
        # Figures of the benchmark's own plots (a plot with nothing to show
        # for this run, e.g. a transformer plot of an mlp run, draws none).
        declared = {
            re.search(r'^    name = "([^"]+)"', plot.read_text(), re.MULTILINE).group(1)
            for plot in (ROOT / report.parent.name / "plots").glob("*.py")
            if not plot.name.startswith(("_", "template_"))
        }
        drawn = {re.sub(r"_\d\d$", "", image.stem) for image in images}
        assert drawn and drawn <= declared, f"{report}: drew {drawn}, declared {declared}"
        for image in images:
            assert image.suffix == ".png" and image.stat().st_size > 0, image
            with Image.open(image) as png:
                assert png.format == "PNG", image
                png.verify()
            pixels = matplotlib.image.imread(image)
            assert pixels.shape[0] >= 200 and pixels.shape[1] >= 300, (image, pixels.shape)
            assert pixels[..., :3].std() > 0.05, f"{image} is a blank image"
    # Pages load nothing from the web: no script, no external resource.
    for page in [site / "index.html", *reports]:
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text and not re.search(r'(src|href)="(https?:)?//', text), page


def test_build_site_refuses_to_delete_a_foreign_folder(tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("not a site")
    results = tiny_runs("unrolling")
    completed = subprocess.run(
        ["bash", str(ROOT / "ci" / "build_site.sh"), "--site", str(tmp_path), *map(str, results)],
        cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert completed.returncode != 0
    assert "refusing to delete it" in completed.stdout + completed.stderr
    assert keep.read_text() == "not a site"


def test_build_site_names_a_result_file_of_no_benchmark(tmp_path):
    (unrolling,) = tiny_runs("unrolling")
    foreign = tmp_path / "foreign.parquet"
    df = pd.read_parquet(unrolling)
    df["objective_name"] = "Some other objective"
    df.to_parquet(foreign)
    completed = subprocess.run(
        ["bash", str(ROOT / "ci" / "build_site.sh"), "--site", str(tmp_path / "site"),
         str(foreign)], cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert completed.returncode != 0
    assert f"cannot tell which benchmark wrote {foreign}" in completed.stderr
    assert not (tmp_path / "site").exists()


# ---------------------------------------------------------------- browser

@pytest.fixture(scope="module")
def browser():
    """Chromium's executable; requested first so that a missing browser skips
    before the site is built."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    message = ("chromium is not installed: install Debian's chromium package "
               "(`apt-get install chromium`; bash ci/run_tests.sh does it when run as root) "
               "to run the browser test")
    if os.environ.get("LEARNOPT_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(browser, site):
    """An HTTP server on 127.0.0.1 serving the site; its base URL."""
    site, _ = site
    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield site, f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def screenshot(browser, url, path, width=1200, height=900):
    """Chromium's screenshot of ``url`` as an RGB array, from a fresh profile
    with background networking off."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            f"--screenshot={path}", f"--window-size={width},{height}", url,
        ]
        completed = subprocess.run(command, capture_output=True, text=True,
                                   timeout=BROWSER_TIMEOUT)
    assert completed.returncode == 0 and Path(path).is_file(), (
        f"chromium could not take a screenshot of {url}:\n{completed.stderr[-3000:]}")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def non_white(pixels):
    return float((pixels.min(axis=2) < 235).mean())


def test_site_in_browser(browser, server, tmp_path):
    site, base = server
    shots = tmp_path / "screenshots"
    shots.mkdir()
    (site / "_blank.html").write_text("<!DOCTYPE html><html><body></body></html>")
    jobs = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        def shoot(name, url, **size):
            jobs[name] = pool.submit(screenshot, browser, url, shots / f"{name}.png", **size)

        shoot("blank", urljoin(base, "_blank.html"))
        shoot("index", base + "index.html")
        reports = report_pages(site)
        assert len(reports) == len(BENCHMARKS)
        pngs = {}
        for report in reports:
            name = report.parent.name
            relative = report.relative_to(site).as_posix()
            with urllib.request.urlopen(urljoin(base, relative), timeout=30) as response:
                assert response.status == 200
            page = links(report)
            # Tall enough to show every figure (two per row).
            height = 500 + 450 * math.ceil(len(page.images) / 2)
            shoot(name, urljoin(base, relative), height=height)
            # The same page with every figure missing: what a reader would
            # see if the PNG files did not load.
            broken = report.parent / "_broken.html"
            text = report.read_text(encoding="utf-8")
            broken.write_text(re.sub(r'<img src="[^"]*"', '<img src="missing.png"', text),
                              encoding="utf-8")
            shoot(f"{name}_broken", urljoin(base, broken.relative_to(site).as_posix()),
                  height=height)
            # Every figure opened on its own, in a window larger than it.
            for src in page.images:
                png = local_target(report, src)
                with Image.open(png) as image:
                    pngs[png] = np.asarray(image.convert("RGB")).astype(int)
                h, w = pngs[png].shape[:2]
                url = urljoin(urljoin(base, relative), src)
                shoot(png.relative_to(site).as_posix().replace("/", "_"), url,
                      width=max(1200, w + 100), height=max(900, h + 100))
        shots_of = {name: job.result() for name, job in jobs.items()}

    blank = shots_of["blank"]
    assert non_white(blank) < 0.001, "the blank page is not blank: screenshots are unreliable"
    index = shots_of["index"]
    assert non_white(index) > 0.005, "the index page shows nothing"
    for report in reports:
        name = report.parent.name
        shot, broken = shots_of[name], shots_of[f"{name}_broken"]
        assert non_white(shot) > 0.03, f"{name}: the report page is nearly blank"
        # A figure that does not load shows as its alt text, exactly as on the
        # broken page (0% of the pixels differ); loaded figures change about
        # 10% of them here.
        changed = float((np.abs(shot - broken).max(axis=2) > 0).mean())
        assert changed > 0.03, (
            f"{name}: the report looks the same as with its figures missing "
            f"({changed:.1%} of the pixels differ)")
    for png, pixels in pngs.items():
        shot = shots_of[png.relative_to(site).as_posix().replace("/", "_")]
        assert pixels.std() > 10, f"{png.name} is a blank figure"
        # Chromium centers a lone image in its window: find it there, pixel
        # for pixel.
        h, w = pixels.shape[:2]
        y0, x0 = (shot.shape[0] - h) // 2, (shot.shape[1] - w) // 2
        error = min(
            np.abs(shot[y0 + dy: y0 + dy + h, x0 + dx: x0 + dx + w] - pixels).mean()
            for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        assert error < 2.0, (
            f"{png.name}: the browser does not show the figure (mean pixel error {error:.1f})")



def load_build_site():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_site", ROOT / "ci" / "build_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_benchmark_names_its_primary_metric():
    build_site = load_build_site()
    expected = {"benchmark_unrolling": ("value", "lower"),
                "benchmark_bilevel": ("value", "lower"),
                "benchmark_sparse_training": ("test_acc", "higher")}
    for benchmark, (name, better) in expected.items():
        metric = build_site.primary_metric(ROOT / benchmark)
        assert (metric["name"], metric["better"]) == (name, better), benchmark
    assert build_site.primary_metric(ROOT / "benchmark_sparse_training")["beside"] == [
        "density"]


def test_final_values_rank_solvers_on_the_primary_metric():
    """Two repetitions of three solvers: the table holds each run's last
    value, the median over repetitions, best first on the primary metric
    (here higher is better, unlike objective_value, the training loss)."""
    build_site = load_build_site()
    rows = []
    # solver: (training loss, test accuracy, density) at the last evaluation
    finals = {"sgd": (0.1, 0.90, 1.0), "linbreg": (0.3, 0.95, 0.1), "adam": (0.05, 0.80, 1.0)}
    for solver, (loss, accuracy, density) in finals.items():
        for repetition in range(2):
            for stop_val, scale in ((0, 0.5), (3, 1.0)):
                rows.append(dict(
                    dataset_name="digits", objective_name="Sparse training", solver_name=solver,
                    idx_rep=repetition, stop_val=stop_val, time=stop_val + repetition,
                    objective_value=loss / scale,
                    objective_test_acc=accuracy * scale + 0.01 * repetition,
                    objective_density=density))
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # order must not matter
    metric = build_site.primary_metric(ROOT / "benchmark_sparse_training")
    table = build_site.final_values(df, metric)
    assert list(table["solver_name"]) == ["linbreg", "sgd", "adam"]
    np.testing.assert_allclose(table["test_acc"], [0.955, 0.905, 0.805])
    np.testing.assert_allclose(table["density"], [0.1, 1.0, 1.0])
    np.testing.assert_allclose(table["time"], [3.5, 3.5, 3.5])
    assert list(table["repetitions"]) == [2, 2, 2]
    lower = {**metric, "better": "lower"}
    assert list(build_site.final_values(df, lower)["solver_name"]) == ["adam", "sgd", "linbreg"]
    with pytest.raises(SystemExit, match="objective_missing"):
        build_site.final_values(df, {**metric, "name": "missing"})
