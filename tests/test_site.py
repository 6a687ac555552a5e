"""The static results site (ci/build_site.sh), built from tiny runs of the
three benchmarks: every page the index links to exists, every PNG export is a
real PNG, every report loads nothing but the site's own plotly.js, and in
headless Chromium with the network off every report draws its plotly figures.
The label shortening, the colours, the log scales and the ranking table are
tested on hand-built data.

The browser test needs Debian's ``chromium`` (``bash ci/run_tests.sh``
installs it when run as root); without it the test is skipped, or fails when
LEARNOPT_REQUIRE_BROWSER=1.
"""
import functools
import html
import json
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
from plotly.offline import get_plotlyjs

BENCHMARKS = ("unrolling", "bilevel", "sparse_training")
BUILD_TIMEOUT = 300
BROWSER_TIMEOUT = 90


class Links(HTMLParser):
    """The href of every <a>, the src of every <img> and <script>, the
    plotly figures (``data-spec`` of each ``.plotly-figure``) and the JSON
    script elements (id: text) of a page."""

    def __init__(self):
        super().__init__()
        self.hrefs, self.images, self.scripts, self.figures = [], [], [], []
        self.json, self._json_id = {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])
        if tag == "script" and attrs.get("type") == "application/json":
            self._json_id = attrs.get("id")
            self.json[self._json_id] = ""
        if tag == "div" and "plotly-figure" in (attrs.get("class") or "").split():
            self.figures.append(attrs.get("data-spec"))

    def handle_data(self, data):
        if self._json_id is not None:
            self.json[self._json_id] += data

    def handle_endtag(self, tag):
        if tag == "script":
            self._json_id = None


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
        # Figures: at least one; each PNG export linked from the page; the
        # images shown (fallbacks of the plotly figures, image plots) among them.
        pngs = [t for t in targets if t.suffix == ".png"]
        assert pngs, f"{report} links no PNG export"
        on_disk = set(report.parent.glob("plots/*/*.png"))
        assert set(pngs) == on_disk, f"{report} does not link exactly its PNG files"
        images = [local_target(report, src) for src in page.images]
        assert set(images) <= on_disk, f"{report} shows an image that is no PNG export"
        # Every plotly figure has its JSON figure, with traces, a legend
        # outside the axes and the full solver names on hover.
        summary = json.loads((report.parent / "summary.json").read_text())
        assert len(page.figures) == summary["n_interactive"] > 0, report
        assert len(set(page.figures)) == len(page.figures), "figure ids must be unique"
        for spec in page.figures:
            figure = json.loads(page.json[spec])
            assert figure["data"], f"{report}: figure {spec} has no trace"
            assert figure["layout"]["legend"]["x"] > 1, "the legend must lie outside the axes"
        solvers = read_results(original)["solver_name"].unique()
        hover = " ".join(page.json.values())
        for solver in solvers:
            assert html.escape(solver) in hover or solver in hover, (report, solver)
        # Figures of the benchmark's own plots (a plot with nothing to show
        # for this run, e.g. a transformer plot of an mlp run, draws none).
        declared = {
            re.search(r'^    name = "([^"]+)"', plot.read_text(), re.MULTILINE).group(1)
            for plot in (ROOT / report.parent.name / "plots").glob("*.py")
            if not plot.name.startswith(("_", "template_"))
        }
        drawn = {re.sub(r"_\d\d$", "", png.stem) for png in pngs}
        assert drawn and drawn <= declared, f"{report}: drew {drawn}, declared {declared}"
        for png_file in pngs:
            assert png_file.stat().st_size > 0, png_file
            with Image.open(png_file) as png:
                assert png.format == "PNG", png_file
                png.verify()
            pixels = matplotlib.image.imread(png_file)
            assert pixels.shape[0] >= 200 and pixels.shape[1] >= 300, (png_file, pixels.shape)
            assert pixels[..., :3].std() > 0.05, f"{png_file} is a blank image"
        # The ranking table: every solver once per dataset, with its target.
        text = report.read_text(encoding="utf-8")
        assert "time to target [s]" in text and "Target:" in text, report
    # Pages load nothing from the web: their one script file is the site's
    # plotly.js (that of the installed plotly package), no external resource.
    plotly_js = site / "plotly.min.js"
    assert plotly_js.read_text(encoding="utf-8") == get_plotlyjs()
    for page_file in [site / "index.html", *reports]:
        text = page_file.read_text(encoding="utf-8")
        assert not re.search(r'(src|href)="(https?:)?//', text), page_file
        assert not re.search(r"(src|href)='", text), page_file
        scripts = links(page_file).scripts
        assert all(local_target(page_file, src) == plotly_js for src in scripts), (
            page_file, scripts)
        assert len(scripts) == (page_file != site / "index.html"), (page_file, scripts)


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


# Chromium with the network off: every host name but 127.0.0.1 fails to
# resolve, and every request that is not to the loopback goes to a proxy on a
# closed port.
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
           "--proxy-server=http://127.0.0.1:9"]
# A CDN's plotly.js, which must not load: the control that the network is off.
CDN_PLOTLY = "https://cdn.plot.ly/plotly-2.35.2.min.js"


def chromium(browser, url, *arguments):
    """Run headless Chromium, offline, from a fresh profile, on ``url``;
    its stdout. Scripts get 15 s of virtual time to finish."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--hide-scrollbars", "--virtual-time-budget=15000", *OFFLINE, *arguments, url,
        ]
        completed = subprocess.run(command, capture_output=True, text=True,
                                   timeout=BROWSER_TIMEOUT)
    assert completed.returncode == 0, (
        f"chromium failed on {url}:\n{completed.stderr[-3000:]}")
    return completed.stdout


def screenshot(browser, url, path, width=1200, height=900):
    """Chromium's screenshot of ``url`` as an RGB array."""
    chromium(browser, url, f"--screenshot={path}", f"--window-size={width},{height}")
    assert Path(path).is_file(), f"chromium took no screenshot of {url}"
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Drawn(HTMLParser):
    """In a DOM dumped by Chromium: the number of ``.js-plotly-plot``
    elements (plotly's figures) that hold an ``svg.main-svg`` (what plotly
    draws), and the attributes of <body>."""

    def __init__(self):
        super().__init__()
        self.stack, self.plots, self.body = [], [], {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "body":
            self.body = attrs
        if tag == "svg" and "main-svg" in classes:
            for entry in self.stack:
                if entry[1] is not None:
                    self.plots[entry[1]] = True
        if tag in VOID:
            return
        index = None
        if "js-plotly-plot" in classes:
            index = len(self.plots)
            self.plots.append(False)
        self.stack.append((tag, index))

    def handle_endtag(self, tag):
        for depth in range(len(self.stack) - 1, -1, -1):
            if self.stack[depth][0] == tag:
                del self.stack[depth:]
                break


def drawn(dom):
    parser = Drawn()
    parser.feed(dom)
    return parser


def non_white(pixels):
    return float((pixels.min(axis=2) < 235).mean())


def test_site_in_browser(browser, server, tmp_path):
    """With the network off, every report draws each of its plotly figures
    (an SVG in each ``.js-plotly-plot``; the page's loader counts them), the
    same page with plotly.js from a CDN draws none, and the page looks
    different from one whose figures do not load. Every PNG export opened on
    its own shows pixel for pixel."""
    site, base = server
    shots = tmp_path / "screenshots"
    shots.mkdir()
    (site / "_blank.html").write_text("<!DOCTYPE html><html><body></body></html>")
    jobs, doms = {}, {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        def shoot(name, url, **size):
            jobs[name] = pool.submit(screenshot, browser, url, shots / f"{name}.png", **size)

        def dump(name, url):
            doms[name] = pool.submit(chromium, browser, url, "--dump-dom")

        shoot("blank", urljoin(base, "_blank.html"))
        shoot("index", base + "index.html")
        reports = report_pages(site)
        assert len(reports) == len(BENCHMARKS)
        pngs, n_figures = {}, {}
        for report in reports:
            name = report.parent.name
            relative = report.relative_to(site).as_posix()
            with urllib.request.urlopen(urljoin(base, relative), timeout=30) as response:
                assert response.status == 200
            page = links(report)
            n_figures[name] = len(page.figures)
            dump(name, urljoin(base, relative))
            height = 700 + 520 * (len(page.figures) + len(page.images))
            shoot(name, urljoin(base, relative), height=height)
            text = report.read_text(encoding="utf-8")
            # The same page with plotly.js from a CDN: nothing may load.
            cdn = report.parent / "_cdn.html"
            cdn.write_text(text.replace('src="../plotly.min.js"', f'src="{CDN_PLOTLY}"'),
                           encoding="utf-8")
            dump(f"{name}_cdn", urljoin(base, cdn.relative_to(site).as_posix()))
            # The same page with neither plotly.js nor the PNG fallbacks: what
            # a reader would see if the figures did not load.
            broken = report.parent / "_broken.html"
            broken.write_text(re.sub(r'<img src="[^"]*"', '<img src="missing.png"', text)
                              .replace('src="../plotly.min.js"', 'src="missing.js"'),
                              encoding="utf-8")
            shoot(f"{name}_broken", urljoin(base, broken.relative_to(site).as_posix()),
                  height=height)
            # Every PNG export opened on its own, in a window larger than it.
            for href in page.hrefs:
                png = local_target(report, href)
                if png.suffix != ".png" or png in pngs:
                    continue
                with Image.open(png) as image:
                    pngs[png] = np.asarray(image.convert("RGB")).astype(int)
                h, w = pngs[png].shape[:2]
                url = urljoin(urljoin(base, relative), href)
                shoot(png.relative_to(site).as_posix().replace("/", "_"), url,
                      width=max(1200, w + 100), height=max(900, h + 100))
        shots_of = {name: job.result() for name, job in jobs.items()}
        doms = {name: drawn(job.result()) for name, job in doms.items()}

    blank = shots_of["blank"]
    assert non_white(blank) < 0.001, "the blank page is not blank: screenshots are unreliable"
    index = shots_of["index"]
    assert non_white(index) > 0.005, "the index page shows nothing"
    for report in reports:
        name = report.parent.name
        dom, cdn = doms[name], doms[f"{name}_cdn"]
        assert "data-figure-error" not in dom.body, (name, dom.body)
        assert dom.body.get("data-figures-rendered") == str(n_figures[name]), (name, dom.body)
        assert len(dom.plots) == n_figures[name] and all(dom.plots), (
            f"{name}: {sum(dom.plots)} of {n_figures[name]} plotly figures drawn")
        # The control: plotly.js from the web does not load, so the network
        # is off and the figures above were drawn by the site's own copy.
        assert cdn.body.get("data-figure-error") == "plotly.js did not load", (name, cdn.body)
        assert not any(cdn.plots), f"{name}: a figure was drawn with plotly.js from a CDN"
        shot, broken = shots_of[name], shots_of[f"{name}_broken"]
        # Plotly draws thin lines on white: about 2% of the pixels here.
        assert non_white(shot) > 0.01, f"{name}: the report page is nearly blank"
        # A figure that does not load shows as its alt text, nearly as on the
        # broken page; loaded figures change about 3% of the pixels here.
        changed = float((np.abs(shot - broken).max(axis=2) > 0).mean())
        assert changed > 0.01, (
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
    expected = {"benchmark_unrolling": [("value", "lower")],
                "benchmark_bilevel": [("value", "lower")],
                "benchmark_sparse_training": [("test_acc", "higher"), ("test_mse", "lower")],
                "benchmark_inverse_problems": [("psnr", "higher")]}
    for benchmark, metrics in expected.items():
        declared = build_site.primary_metrics(ROOT / benchmark)
        assert [(m["name"], m["better"]) for m in declared] == metrics, benchmark
    assert build_site.primary_metric(ROOT / "benchmark_sparse_training")["beside"] == [
        "density"]


def test_each_objective_is_ranked_on_the_metric_it_reports():
    """Sparse training: a classification objective on accuracy, a denoising
    one (no accuracy) on the test error."""
    build_site = load_build_site()
    rows = [dict(objective_name=objective, objective_test_acc=accuracy,
                 objective_test_mse=error)
            for objective, accuracy, error in (
                ("Sparse training[model=mlp]", 0.9, float("nan")),
                ("Sparse training[model=mlp_deep,task=denoising]", float("nan"), 0.02))]
    groups = build_site.split_by_metric(
        pd.DataFrame(rows), build_site.primary_metrics(ROOT / "benchmark_sparse_training"))
    assert [(metric["name"], list(part["objective_name"])) for metric, part in groups] == [
        ("test_acc", ["Sparse training[model=mlp]"]),
        ("test_mse", ["Sparse training[model=mlp_deep,task=denoising]"])]


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


def load_render_plots():
    load_build_site()  # puts ci/ on sys.path
    import render_plots

    return render_plots


def test_short_labels_keep_the_parameters_that_differ():
    short_labels = load_render_plots().short_labels
    names = [
        "lista[init=ista,lr=0.001,batch_size=512]",
        "lista[init=random,lr=0.001,batch_size=512]",
        "ista",
        "soba[batch_size=64,step_size=0.1]",           # one setting: its bare name
        "lista_cp[lr=0.01,sizes=(1,2)]",               # commas inside a value
        "lista_cp[lr=0.1,sizes=(1,2)]",
        "fista",                                       # a parameter only one run names
        "fista[restart=True]",
        "alista[a=1,b=2]",                             # the same setting twice: full names
        "alista[b=2,a=1]",
    ]
    assert short_labels(names) == {
        "lista[init=ista,lr=0.001,batch_size=512]": "lista[init=ista]",
        "lista[init=random,lr=0.001,batch_size=512]": "lista[init=random]",
        "ista": "ista",
        "soba[batch_size=64,step_size=0.1]": "soba",
        "lista_cp[lr=0.01,sizes=(1,2)]": "lista_cp[lr=0.01]",
        "lista_cp[lr=0.1,sizes=(1,2)]": "lista_cp[lr=0.1]",
        "fista": "fista",
        "fista[restart=True]": "fista[restart=True]",
        "alista[a=1,b=2]": "alista[a=1,b=2]",
        "alista[b=2,a=1]": "alista[b=2,a=1]",
    }
    # Two parameters that differ, in the order the name gives them.
    assert short_labels(["lista[init=ista,lr=0.1,x=1]", "lista[init=random,lr=0.01,x=1]"]) == {
        "lista[init=ista,lr=0.1,x=1]": "lista[init=ista,lr=0.1]",
        "lista[init=random,lr=0.01,x=1]": "lista[init=random,lr=0.01]"}


def test_one_colour_per_solver_related_methods_in_related_hues():
    import colorsys

    render_plots = load_render_plots()
    names = ["ista", "lista[init=ista,lr=0.001]", "lista[init=random,lr=0.001]",
             "lista[init=random,lr=0.01]", "fista", *(f"solver_{i}" for i in range(15))]
    styles = render_plots.solver_styles(names)
    colors = [color for color, _ in styles.values()]
    assert len(set(colors)) == len(names), "every solver has its own colour"
    hue = {name: colorsys.rgb_to_hls(*styles[name][0])[0] for name in names}
    lista = [name for name in names if name.startswith("lista")]
    for name in lista:  # one family: one hue, different shades
        gap = abs(hue[name] - hue[lista[0]])
        assert min(gap, 1 - gap) < 0.05, name
    # Families (one solver name each) get clearly different colours.
    bases = [styles[name][0] for name in names if not name.startswith("lista")]
    bases.append(styles[lista[0]][0])
    distances = [np.linalg.norm(np.subtract(c1, c2)) for i, c1 in enumerate(bases)
                 for c2 in bases[i + 1:]]
    assert min(distances) > 0.1, min(distances)
    # Markers tell the runs of one family apart.
    assert len({styles[name][1] for name in lista}) == len(lista)
    # The same solver gets the same colour in every figure of a page.
    page = render_plots.Styles(names)
    labels = render_plots.short_labels(names[:4])
    assert labels["lista[init=random,lr=0.01]"] == "lista[init=random,lr=0.01]"
    assert labels["ista"] == "ista"
    figures = []
    for kind in ("first", "second"):
        # The plots label traces by full name; the figure shows short labels.
        data = dict(type="scatter", title=kind, xlabel="layer", ylabel="gap", scale="linear",
                    data=[dict(x=[0, 1, 2], y=[1.0, 0.1, 1e-3], label=name, **page.get(name))
                          for name in reversed(names[:4])])
        figures.append(json.loads(render_plots.plotly_figure(data, page, labels)))
    first, second = ({t["name"]: t["line"]["color"] for t in figure["data"]}
                     for figure in figures)
    assert first == second and len(set(first.values())) == 4
    for trace, name in zip(figures[0]["data"], reversed(names[:4])):
        assert trace["name"] == labels[name] and f"<b>{name}" in trace["hovertemplate"]
        assert trace["line"]["color"] == render_plots.rgba(page.get(name)["color"])
    layout = figures[0]["layout"]
    assert layout["legend"]["x"] > 1 and layout["legend"]["xanchor"] == "left"
    # Values from 1 to 1e-3 span three decades: a log y axis; the layers do not.
    assert layout["yaxis"]["type"] == "log" and layout["xaxis"]["type"] == "linear"


def test_log_scales_where_values_span_decades():
    axis_scales = load_render_plots().axis_scales

    def data(x, y, scale=None):
        return dict(type="scatter", scale=scale, data=[dict(x=x, y=y)])

    assert axis_scales(data([1, 2, 3], [1.0, 0.5, 0.2])) == (False, False)
    assert axis_scales(data([1, 2, 3], [1.0, 1e-2, 1e-3])) == (False, True)
    assert axis_scales(data([1e-3, 1, 10], [1.0, 0.5, 0.2])) == (True, False)
    assert axis_scales(data([1, 2, 3], [0.0, 1e-2, 1.0])) == (False, False)  # a zero
    assert axis_scales(data([1, 2, 3], [1.0, 0.5, float("nan"), 1e-4][:3])) == (False, False)
    assert axis_scales(data([1, 2, 3], [1.0, float("nan"), 1e-4])) == (False, True)
    # A scale the plot asks for stays, where the axis has positive values.
    assert axis_scales(data([1, 2, 3], [1.0, 0.5, 0.2], "semilog-y")) == (False, True)
    assert axis_scales(data([0, 1, 2], [1.0, 0.5, 0.2], "loglog")) == (True, True)
    assert axis_scales(data([1, 2], [-1.0, -2.0], "semilog-y")) == (False, False)


def test_final_values_time_to_target():
    """Hand-built runs: the target is 1.01 x the best median final value
    (lower is better); a repetition's time to target is its time at its first
    evaluation within the target; the median over repetitions is infinite
    unless more than half of them reach it."""
    build_site = load_build_site()
    curves = {  # solver: repetitions of [(time, value), ...] in evaluation order
        "a": [[(0, 4.0), (1, 2.0), (2, 1.02), (3, 1.0)],
              [(0, 4.0), (1.5, 1.5), (2.5, 1.005), (3.5, 1.0)]],
        "b": [[(0, 3.0), (1, 1.1), (2, 1.008)],
              [(0, 3.0), (1, 1.2), (2, 1.1)]],
        "c": [[(0, 5.0), (1, 2.0)], [(0, 5.0), (1, 2.5)]],
        "d": [[(0, 1.0), (4, 1.009)], [(0, 1.0), (4, 1.009)], [(0, 1.3), (9, 1.2)]],
    }
    rows = [dict(dataset_name="simulated", objective_name="Lasso", solver_name=solver,
                 idx_rep=rep, stop_val=stop, time=time, objective_value=value)
            for solver, reps in curves.items() for rep, points in enumerate(reps)
            for stop, (time, value) in enumerate(points)]
    # A second dataset with a negative best value: the target is best + 1% |best|.
    for solver, values in {"a": [0.0, -1.99], "b": [0.0, -2.0], "c": [0.0, -1.9]}.items():
        rows += [dict(dataset_name="negative", objective_name="Lasso", solver_name=solver,
                      idx_rep=0, stop_val=stop, time=10.0 * stop, objective_value=value)
                 for stop, value in enumerate(values)]
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=1)
    metric = {"name": "value", "better": "lower", "beside": []}
    table = build_site.final_values(df, metric).set_index(["dataset_name", "solver_name"])
    negative, simulated = table.loc["negative"], table.loc["simulated"]
    assert list(simulated.index) == ["a", "d", "b", "c"]
    np.testing.assert_allclose(simulated["target"], 1.01)
    np.testing.assert_allclose(simulated["value"], [1.0, 1.009, 1.054, 2.25])
    np.testing.assert_allclose(simulated["value_min"], [1.0, 1.009, 1.008, 2.0])
    np.testing.assert_allclose(simulated["value_max"], [1.0, 1.2, 1.1, 2.5])
    # a: 3 and 2.5; d: at time 0 twice (first evaluation), never once; b: 2 and never.
    np.testing.assert_allclose(simulated["time_to_target"], [2.75, 0.0, np.inf, np.inf])
    assert list(simulated["reached"]) == [2, 2, 1, 0]
    assert list(simulated["repetitions"]) == [2, 3, 2, 2]
    assert list(negative.index) == ["b", "a", "c"]
    np.testing.assert_allclose(negative["target"], -1.98)
    np.testing.assert_allclose(negative["time_to_target"], [10.0, 10.0, np.inf])
    # Higher is better: the target is best - 1% |best|; the mirror image of
    # the runs above (values negated) gives the same ranks and times.
    higher = df.assign(objective_value=-df["objective_value"])
    table = build_site.final_values(higher, {**metric, "better": "higher"})
    mirrored = table[table["dataset_name"] == "simulated"].set_index("solver_name")
    assert list(mirrored.index) == ["a", "d", "b", "c"]
    np.testing.assert_allclose(mirrored["target"], -1.01)
    np.testing.assert_allclose(mirrored["time_to_target"], simulated["time_to_target"])
    assert list(mirrored["reached"]) == [2, 2, 1, 0]
    # The rule the page states, rendered: ranks, spread, reached, not reached.
    labels = {"a": "a", "b": "b", "c": "c", "d": "d"}
    page = build_site.ranking_tables(df, metric, labels)
    assert page.count("<table>") == 2 and "not reached" in page and "2/3" in page
    assert "1.008 &ndash; 1.1" in page


def test_ranking_flags_runs_that_did_not_train_and_keeps_a_final_nan():
    """A solver whose validation metric ended worse than it started is listed
    after the ranked ones, without a rank, flagged; a run that ended in NaN
    is scored NaN, not by its last finite value."""
    build_site = load_build_site()
    curves = {  # solver: (validation curve, test curve)
        "good": ([3.0, 1.0, 0.5], [3.0, 1.1, 0.6]),
        # Its test value is the best of all, but it ended above its start.
        "worse": ([3.0, 0.1, 3.5], [3.0, 0.1, 0.05]),
        "ended_nan": ([3.0, 0.2, np.nan], [3.0, 0.2, np.nan]),
        "fine": ([3.0, 2.0, 1.0], [3.0, 2.0, 1.2]),
    }
    rows = [dict(dataset_name="d", objective_name="o", solver_name=solver, idx_rep=0,
                 stop_val=stop, time=float(stop), objective_value=test,
                 objective_validation_gap=validation)
            for solver, (validations, tests) in curves.items()
            for stop, (validation, test) in enumerate(zip(validations, tests))]
    df = pd.DataFrame(rows)
    metric = {"name": "value", "better": "lower", "beside": []}
    validation = [{"name": "validation_gap", "better": "lower"}]
    table = build_site.final_values(df, metric, validation=validation)
    assert list(table["solver_name"]) == ["good", "fine", "worse", "ended_nan"]
    assert list(table["did_not_train"]) == [0, 0, 1, 1]
    assert np.isnan(table.set_index("solver_name").loc["ended_nan", "value"])
    page = build_site.ranking_tables(df, metric, {s: s for s in curves}, validation)
    assert page.count("did not train (1/1)") == 1 and page.count("diverged (1/1)") == 1
    assert '<td class="num">&ndash;</td><td title="worse">worse' in page
    assert list(table["diverged"]) == [0, 0, 0, 1]
    # Without a validation metric only the divergence is flagged.
    unvalidated = build_site.final_values(df, metric)
    assert list(unvalidated["solver_name"]) == ["worse", "good", "fine", "ended_nan"]
    assert list(unvalidated["trained"]) == [True, True, True, False]
    assert list(table["best_epoch"]) == [2, 2, 1, 1]
    assert "<th>best validation epoch (median)</th>" in page
