"""``stockrnn report`` and ``run --report``: one self-contained HTML page per run, batch and
backtest.

Two kinds of checks on the same three pages (a run, a 2-ticker batch, a 2-fold backtest, all on
tiny configs and the synthetic source, built once for the module):

* the structure, without a browser: the page parses, has its sections, every ``<img>`` is a
  ``data:`` URI that decodes to a PNG, nothing points outside the page (no http(s), no script,
  no stylesheet link), the numbers are the run's;
* as a person sees it: the page is opened in real headless Chromium (Debian's
  /usr/bin/chromium, driven over its DevTools protocol on a pipe: no port, stdlib only), which
  must load it with no console error and no request but the page itself and its data: images,
  decode and lay out every image, show a screenshot that is not blank, and fit a phone's width
  (tables scroll inside their box). One Chromium per page. Chromium missing is a failure, not a
  skip: .ci/run installs it.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import html.parser
import io
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from helpers import SMOKE, explain, invoke, last_line, saved_logging, set_args

from stockrnn import report
from stockrnn.errors import RunError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM = os.environ.get("STOCKRNN_CHROMIUM", "/usr/bin/chromium")
# where the screenshots go (default: the module's temporary folder), to look at them
SHOTS = os.environ.get("STOCKRNN_REPORT_SHOTS")
TINY = ["data.source=synthetic", "data.ticker=RW1", "window.look_back=5", "model.units=[4]",
        "train.epochs=2"]
RUN_SECTIONS = ("training", "evaluation", "intervals", "plots", "forecast")
BACKTEST_SECTIONS = ("backtest", "verdict", "folds", "pooled", "intervals", "trading", "plots")


def tiny(base: Path, *extra: str) -> list[str]:
    return ["-c", str(SMOKE), *set_args([*TINY, f"paths.data_dir={base / 'data'}",
                                         f"paths.runs_dir={base / 'runs'}", *extra])]


def cli(*args, code: int = 0):
    with saved_logging():  # module fixtures run outside the per-test logging restore
        return invoke(*args, code=code)


# --------------------------------------------------------------------------- the artefacts


@pytest.fixture(scope="module")
def batch_pages(tmp_path_factory) -> dict:
    """`run --report` over a 2-ticker synthetic config (the module's only per-ticker runs)."""
    base = tmp_path_factory.mktemp("report-batch")
    result = cli("run", "-q", *tiny(base, "data.tickers=[RW1, RW2]", "paths.run_name=multi"),
                 "--report")
    batch_dir = Path(last_line(result))
    return {"dir": batch_dir, "page": batch_dir / "report.html", "result": result,
            "summary": json.loads((batch_dir / "summary.json").read_text())}


def unevaluated_copy(run: Path, dest: Path) -> Path:
    """A copy of a complete run as ``train`` leaves it: no metrics, forecast or report."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns(
        "report.html", "metrics_*.json", "forecast*", "predictions_*.png", "residuals_*.png"))
    return dest


@pytest.fixture(scope="module")
def run_pages(tmp_path_factory, batch_pages) -> dict:
    """A trained, never evaluated run (a copy of the batch's RW1 run, stripped to what
    `train` writes): its report before predict (evaluates it, notes the missing forecast),
    then after `predict --steps 3`, written with --output."""
    base = tmp_path_factory.mktemp("report-run")
    row = next(r for r in batch_pages["summary"]["tickers"] if r["ticker"] == "RW1")
    run = unevaluated_copy(Path(row["run_dir"]), base / "runs" / "one" / "20260101T000000Z")
    first = cli("report", run)
    cli("predict", "--run", run, "--allow-stale", "--steps", "3")
    out = base / "pages" / "run.html"
    second = cli("report", run, "--output", out)
    return {"run": run, "first": first, "first_page": run / "report.html", "second": second,
            "page": out}


@pytest.fixture(scope="module")
def backtest_pages(tmp_path_factory) -> dict:
    """`backtest --folds 2 --refit never` (one model forecasts both folds), then `report`."""
    base = tmp_path_factory.mktemp("report-backtest")
    bt_dir = Path(last_line(cli("backtest", "-q", *tiny(base, "paths.run_name=bt"),
                                "--folds", "2", "--refit", "never")))
    result = cli("report", bt_dir)
    return {"dir": bt_dir, "page": Path(last_line(result)), "result": result,
            "summary": json.loads((bt_dir / "summary.json").read_text())}


# --------------------------------------------------------------------------- structure


class Page(html.parser.HTMLParser):
    """What the structure tests look at: ids, images, links, scripts, every URL attribute."""

    URL_ATTRS = {"src", "href", "srcset", "action", "formaction", "data", "poster", "background",
                 "cite", "longdesc", "manifest", "ping", "xlink:href"}

    def __init__(self, text: str):
        super().__init__()
        self.ids: list[str] = []
        self.images: list[dict] = []
        self.links: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.images.append(a)
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        self.urls += [(tag, k, v or "") for k, v in attrs if k in self.URL_ATTRS]

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)

    @property
    def words(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.text))


def parse(path: Path) -> tuple[str, Page]:
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


def check_self_contained(text: str, page: Page, n_images: int) -> None:
    """Every image a data: PNG, every link in the page, nothing to fetch, phone and print CSS."""
    assert text.lstrip().lower().startswith("<!doctype html>")
    assert len(page.images) == n_images, [i.get("alt") for i in page.images]
    for img in page.images:
        src = img.get("src", "")
        assert src.startswith("data:image/png;base64,"), src[:60]
        try:
            data = base64.b64decode(src.partition(",")[2], validate=True)
        except binascii.Error as exc:
            raise AssertionError(f"{img.get('alt')}: not base64 ({exc})") from None
        assert data.startswith(PNG_MAGIC), img.get("alt")
        assert int(img["width"]) > 0 and int(img["height"]) > 0 and img.get("alt")
    for tag, attr, url in page.urls:
        assert url.startswith(("data:", "#")), f"<{tag} {attr}={url[:80]!r}> leaves the page"
    for href in page.links:
        assert href[1:] in page.ids, f"link {href} has no target on the page"
    assert not re.search(r"https?://", text), re.search(r".{40}https?://.{40}", text)
    assert not re.search(r"url\(|@import", text), "CSS must not load anything"
    assert not [t for t, _ in page.tags if t in ("script", "iframe", "object", "embed")]
    assert not [a for t, a in page.tags if t == "link" and a.get("rel") != "icon"]
    metas = {a.get("name") or a.get("http-equiv"): a.get("content", "") for t, a in page.tags
             if t == "meta"}
    assert "width=device-width" in metas["viewport"]
    assert "default-src 'none'" in metas["Content-Security-Policy"]
    assert "@media print" in text and "@media (max-width" in text
    assert "overflow-x: auto" in text  # tables scroll inside their box on a phone


def test_run_report_is_self_contained_with_every_section(run_pages):
    text, page = parse(run_pages["page"])
    check_self_contained(text, page, n_images=4)  # loss, predictions, residuals, forecast
    assert set(RUN_SECTIONS) <= set(page.ids)
    assert [i["alt"].split(":")[0] for i in page.images] == [
        "Training and validation loss per epoch", "Test split",
        "Test split", "Forecast with its 80% and 95% intervals"]
    # the printed path is the page, last
    assert last_line(run_pages["second"]) == str(run_pages["page"])


def test_run_report_shows_the_runs_own_numbers(run_pages):
    run = run_pages["run"]
    _, page = parse(run_pages["page"])
    words = page.words
    metrics = json.loads((run / "metrics_test.json").read_text())
    meta = json.loads((run / "meta.json").read_text())
    m, p = metrics["model"], metrics["baselines"]["persistence"]
    assert re.search(rf"model {m['mae']:.4f} {m['rmse']:.4f} {m['mape']:.2f}% {m['mase']:.4f}",
                     words), words[:2000]
    assert re.search(rf"persistence {p['mae']:.4f} .* 1\.0000", words)
    for name in ("drift", "moving_average"):
        assert f"{name} {metrics['baselines'][name]['mae']:.4f}" in words
    assert f"MASE {m['mase']:.4f}: the model's mean absolute error" in words  # the verdict
    assert "binomial p =" in words
    assert "80% interval: the actual price fell inside it" in words
    data = meta["data"]
    assert f"{data['rows']} rows, {data['first']} .. {data['last']}" in words
    assert f"keras {meta['versions']['keras']}" in words and "tensorflow" in words
    assert "RW1" in words and "look_back 5" in words and "units [4]" in words
    assert f"{meta['epochs_run']} of 2 epochs" in words
    forecast = (run / "forecast.csv").read_text().splitlines()
    assert len(forecast) == 4
    for line in forecast[1:]:
        date, fc, lo80, hi80, lo95, hi95 = line.split(",")[:6]
        assert re.search(rf"{date}( \*)? {float(fc):.4f} {float(lo80):.4f} {float(hi80):.4f} "
                         rf"{float(lo95):.4f} {float(hi95):.4f}", words), line


def test_report_evaluates_a_run_first_and_notes_a_missing_forecast(run_pages):
    """The first report ran before predict: evaluated the run, said the forecast is missing."""
    first = run_pages["first_page"]
    assert last_line(run_pages["first"]) == str(first)
    text, page = parse(first)
    assert (run_pages["run"] / "metrics_test.json").is_file()
    check_self_contained(text, page, n_images=3)
    assert "no forecast yet: stockrnn predict --run" in page.words
    assert "model " in page.words and "MASE" in page.words


def test_batch_report_has_a_leaderboard_linking_a_section_per_ticker(batch_pages):
    summary, batch_dir = batch_pages["summary"], batch_pages["dir"]
    assert last_line(batch_pages["result"]) == str(batch_dir)  # run still prints its dir last
    text, page = parse(batch_pages["page"])
    check_self_contained(text, page, n_images=8)  # 4 per ticker: --report draws the plots
    assert {"batch", "leaderboard"} <= set(page.ids)
    for row in summary["tickers"]:
        t = row["ticker"]
        assert f"#t-{t}" in page.links
        assert {f"t-{t}", *(f"t-{t}-{s}" for s in RUN_SECTIONS)} <= set(page.ids)
        assert f"{t} ok {row['mase']:.4f}" in page.words
        # `run --report` also wrote each ticker's own page into its run directory
        own = Path(row["run_dir"]) / "report.html"
        check_self_contained(*parse(own), n_images=4)
    ranked = sorted(summary["tickers"], key=lambda r: r["mase"])
    words = page.words
    assert words.index(f"1 {ranked[0]['ticker']} ok") < words.index(f"2 {ranked[1]['ticker']} ok")


def test_run_with_report_writes_the_page_before_the_gate_fails(run_pages, tmp_path,
                                                              monkeypatch):
    """`run --report` on a one-ticker config: the page is in the run directory even when
    --max-mase then exits 3, and the run directory is still printed last. (The pipeline is
    stubbed with a copy of the module's run; the batch fixture runs `run --report` for real.)"""
    from stockrnn import stages

    run = shutil.copytree(run_pages["run"], tmp_path / "runs" / "one" / "r",
                          ignore=shutil.ignore_patterns("report.html"))
    metrics = json.loads((run / "metrics_test.json").read_text())
    monkeypatch.setattr(stages, "run_all", lambda *args, **kwargs: stages.RunSummary(
        config="one", stages=[], run_dir=str(run), metrics={}, forecast={}, result=metrics))
    result = cli("run", *tiny(tmp_path), "--report", "--max-mase", "0.01", code=3)
    assert last_line(result) == str(run)
    check_self_contained(*parse(run / "report.html"), n_images=4)


def test_backtest_report_has_folds_pooled_verdict_trading_and_plots(backtest_pages):
    s = backtest_pages["summary"]
    assert backtest_pages["page"] == backtest_pages["dir"] / "report.html"
    text, page = parse(backtest_pages["page"])
    check_self_contained(text, page, n_images=3)  # fold MASE, cumulative error, equity
    assert set(BACKTEST_SECTIONS) <= set(page.ids)
    words = page.words
    for f in s["folds"]:
        assert re.search(rf"{f['fold']} {f['first']} {f['last']} {f['n']} {f['train_rows']} "
                         rf"{f['model']['mae']:.4f} {f['model']['mase']:.4f}", words), f
    pooled = s["pooled"]
    assert f"pooled: {pooled['n']} points" in words
    assert f"model {pooled['model']['mae']:.4f}" in words
    assert f"finds it {pooled['verdict']}" in words
    assert "buy and hold net" in words and "model signal gross" in words


def test_multi_ticker_backtest_gets_an_overview_and_a_section_per_ticker(backtest_pages,
                                                                       tmp_path):
    """A summary with a "tickers" dict (a multi-ticker backtest): built here from the 2-fold
    one copied under tickers/<T>/."""
    s = backtest_pages["summary"]
    multi = tmp_path / "backtest-multi"
    for t in ("RW1", "RW2"):
        shutil.copytree(backtest_pages["dir"], multi / "tickers" / t)
    (multi / "summary.json").write_text(json.dumps(
        {"backtest_dir": str(multi), "config": "bt",
         "tickers": {t: {**s, "ticker": t, "backtest_dir": str(multi / "tickers" / t)}
                     for t in ("RW1", "RW2")}}))
    out = report.write_report(multi)
    text, page = parse(out)
    check_self_contained(text, page, n_images=6)
    assert "overview" in page.ids
    for t in ("RW1", "RW2"):
        assert {f"t-{t}-{sec}" for sec in BACKTEST_SECTIONS} <= set(page.ids)


def test_missing_pieces_are_notes_and_text_is_escaped(run_pages, tmp_path):
    """No forecast, no plots, a failed ticker whose error holds HTML, a vanished run: notes on
    the page, never an error; nothing from the files becomes markup."""
    run = tmp_path / "runs" / "one" / "r1"
    shutil.copytree(run_pages["run"], run, ignore=shutil.ignore_patterns("report.html"))
    shutil.rmtree(run / "plots")
    (run / "forecast.csv").unlink()
    batch_dir = tmp_path / "runs" / "x" / "batch-1"
    batch_dir.mkdir(parents=True)
    evil = "<script>alert(1)</script> & <img src=//example.com/x.png>"
    rows = [{"ticker": "RW1", "status": "ok", "error": None, "run_dir": str(run), "mase": 1.0,
             "directional_accuracy": 0.5, "test_mae": 0.5, "persistence_mae": 0.5,
             "seconds": 1.0},
            {"ticker": "BAD<b>", "status": "failed", "error": evil, "run_dir": None,
             "mase": None, "directional_accuracy": None, "test_mae": None,
             "persistence_mae": None, "seconds": 0.1},
            {"ticker": "GONE", "status": "ok", "error": None, "run_dir": "runs/gone/r9",
             "mase": 0.9, "directional_accuracy": 0.5, "test_mae": 0.5, "persistence_mae": 0.5,
             "seconds": 1.0}]
    (batch_dir / "summary.json").write_text(json.dumps(
        {"batch_dir": str(batch_dir), "config": "x", "jobs": 1, "tickers": rows, "ok": 2,
         "failed": ["BAD<b>"]}))
    out = cli("report", batch_dir, "--output", tmp_path / "page.html")
    text, page = parse(Path(last_line(out)))
    check_self_contained(text, page, n_images=0)
    words = page.words
    assert "no forecast yet" in words and "no plots/loss.png in the run directory" in words
    assert f"failed: {evil}" in words  # shown as text ...
    assert "<script>" not in text and "&lt;script&gt;" in text  # ... never as markup
    assert "its run directory runs/gone/r9 is not there any more" in words
    assert "t-BAD_b_" in page.ids


def test_not_a_run_batch_or_backtest_is_exit_1(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("report", empty, code=1)
    assert "not a run, batch or backtest directory" in result.stderr, explain(result)
    result = cli("report", "no-such-run", "--runs-dir", tmp_path, code=1)
    assert "no-such-run" in result.stderr and "`stockrnn report` takes" in result.stderr
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "summary.json").write_text('{"tune_dir": "x"}')
    result = cli("report", odd, code=1)
    assert "neither a batch's" in result.stderr
    (odd / "summary.json").write_text('{"folds": [], "ticker": "X"}')  # no "pooled"
    result = cli("report", odd, code=1)
    assert "not in the format this stockrnn" in result.stderr, explain(result)
    with pytest.raises(RunError):
        report.detect(empty)


# --------------------------------------------------------------------------- in a browser


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
    commands on its fd 3, replies on fd 4, each a JSON message ending in NUL)."""

    FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-component-update", "--disable-sync", "--disable-default-apps",
             "--mute-audio", "--hide-scrollbars", "--remote-debugging-pipe")

    def __init__(self, binary: str, profile: Path, width: int = 1280, height: int = 900):
        cmd_r, cmd_w = os.pipe()
        out_r, out_w = os.pipe()
        # fds from 10 up, so moving them to 3 and 4 in the child never clobbers one another
        child = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (cmd_r, out_w)]
        for fd in (cmd_r, out_w):
            os.close(fd)
        self._to, self._from = cmd_w, out_r
        self.log_path = profile / "chromium.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{child[0]} 4>&{child[1]} {child[0]}<&- '
                           f'{child[1]}>&-', binary, *self.FLAGS, f"--user-data-dir={profile}",
             f"--window-size={width},{height}", "about:blank"],
            pass_fds=child, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        for fd in child:
            os.close(fd)
        self._buf, self._id, self.events = b"", 0, []

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Chromium did not answer in time\n{self.log_tail()}")
            if select.select([self._from], [], [], left)[0]:
                chunk = os.read(self._from, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe\n{self.log_tail()}")
                self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def evaluate(self, session: str, expression: str):
        r = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                           "returnByValue": True}, session)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:60]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def log_tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-2000:]

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to, self._from):
            os.close(fd)
        self._log.close()


IMAGES_JS = """
Promise.all([...document.images].map(i => i.decode().then(() => null, e => String(e))))
  .then(errors => [...document.images].map((i, k) => {
    const r = i.getBoundingClientRect(), s = getComputedStyle(i);
    return {alt: i.alt, error: errors[k], complete: i.complete, naturalWidth: i.naturalWidth,
            naturalHeight: i.naturalHeight, width: r.width, height: r.height,
            visible: s.visibility !== 'hidden' && s.display !== 'none' && s.opacity !== '0'};
  }))
"""
WIDTH_JS = """({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
  wide: [...document.querySelectorAll('body *')].filter(e => !e.closest('.scroll'))
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
        .map(e => e.tagName + '.' + e.className).slice(0, 5)})"""

PRINT_JS = """({nav: getComputedStyle(document.querySelector('nav')).display,
  cut: [...document.querySelectorAll('.scroll, table, figure, img, p, pre')]
        .filter(e => e.scrollWidth > e.clientWidth + 1
                     || e.getBoundingClientRect().right > window.innerWidth + 1)
        .map(e => e.tagName + '.' + e.className).slice(0, 5)})"""


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module's pages (each opened in a new tab)."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: the browser test needs Debian's chromium "
                    "(.ci/run installs it: apt-get update && apt-get install -y chromium; or set "
                    "STOCKRNN_CHROMIUM to a Chromium binary)")
    profile = Path(tempfile.mkdtemp(prefix="stockrnn-chromium-"))
    browser = Chromium(CHROMIUM, profile)
    try:
        yield browser
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)


def browse(browser: Chromium, page: Path, shot: Path) -> dict:
    """Open ``page`` in a new tab of headless Chromium as a person would; returns what it
    saw (the events of that tab only)."""
    first_event = len(browser.events)
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    try:
        sid = browser.send("Target.attachToTarget", {"targetId": target,
                                                     "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=sid)
        url = page.resolve().as_uri()
        browser.send("Page.navigate", {"url": url}, sid)
        deadline = time.monotonic() + 30
        while browser.evaluate(sid, "location.href + ' ' + document.readyState") != \
                f"{url} complete":
            assert time.monotonic() < deadline, "the page did not finish loading"
            time.sleep(0.05)
        seen = {"images": browser.evaluate(sid, IMAGES_JS),
                "title": browser.evaluate(sid, "document.title"),
                "text": browser.evaluate(sid, "document.body.innerText")}
        size = browser.send("Page.getLayoutMetrics", session=sid)["cssContentSize"]
        png = base64.b64decode(browser.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                     "scale": 1}}, sid)["data"])
        shot.parent.mkdir(parents=True, exist_ok=True)
        shot.write_bytes(png)
        seen["screenshot"] = png
        browser.send("Emulation.setDeviceMetricsOverride", {
            "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}, sid)
        seen["phone"] = browser.evaluate(sid, WIDTH_JS)
        phone_png = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"},
                                                  sid)["data"])
        shot.with_name(shot.stem + "-phone.png").write_bytes(phone_png)
        browser.send("Emulation.setDeviceMetricsOverride", {  # A4 less the print margins
            "width": 690, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, sid)
        browser.send("Emulation.setEmulatedMedia", {"media": "print"}, sid)
        seen["print"] = browser.evaluate(sid, PRINT_JS)
        print_png = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"},
                                                  sid)["data"])
        shot.with_name(shot.stem + "-print.png").write_bytes(print_png)
        events = [e for e in browser.events[first_event:] if e.get("sessionId") == sid]
    finally:
        browser.send("Target.closeTarget", {"targetId": target})
    seen["errors"] = [e["params"] for e in events if e.get("method") in (
        "Runtime.exceptionThrown",)] + [
        e["params"]["entry"] for e in events if e.get("method") == "Log.entryAdded"
        and e["params"]["entry"]["level"] == "error"] + [
        e["params"] for e in events if e.get("method") == "Runtime.consoleAPICalled"
        and e["params"]["type"] in ("error", "assert")]
    seen["requests"] = [e["params"]["request"]["url"] for e in events
                        if e.get("method") == "Network.requestWillBeSent"]
    seen["url"] = url
    return seen


def not_blank(png: bytes) -> tuple[float, float]:
    """(share of pixels that are not white, grey-level standard deviation) of a screenshot."""
    import numpy as np
    from PIL import Image

    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype="float64")
    assert grey.shape[0] > 300 and grey.shape[1] > 300, grey.shape
    return float((grey < 245).mean()), float(grey.std())


@pytest.mark.parametrize("kind", ["run", "batch", "backtest"])
def test_page_in_a_real_browser(kind, request, tmp_path_factory, chromium):
    pages = request.getfixturevalue(f"{kind}_pages")
    page = pages["page"]
    shots = Path(SHOTS) if SHOTS else tmp_path_factory.mktemp("shots")
    seen = browse(chromium, page, shots / f"report-{kind}.png")

    assert not seen["errors"], f"console errors: {seen['errors']}"
    assert seen["requests"][0] == seen["url"]
    others = [u[:60] for u in seen["requests"] if u != seen["url"] and not u.startswith("data:")]
    assert not others, f"the page asked for something besides itself: {others}"
    assert seen["title"].startswith("stockrnn report: ")
    images = seen["images"]
    assert len(images) == len(Page(page.read_text()).images) > 0
    for img in images:
        assert img["error"] is None and img["complete"], img
        assert img["naturalWidth"] > 0 and img["naturalHeight"] > 0, img
        assert img["width"] > 0 and img["height"] > 0 and img["visible"], img
    assert "MASE" in seen["text"] and "persistence" in seen["text"]
    inked, spread = not_blank(seen["screenshot"])
    assert inked > 0.02 and spread > 10, f"the screenshot looks blank ({inked:.3f}, {spread:.1f})"
    phone = seen["phone"]
    assert phone["scroll"] <= phone["inner"] + 1 and not phone["wide"], \
        f"wider than a phone: {phone}"
    printed = seen["print"]
    assert printed["nav"] == "none" and not printed["cut"], f"cut off when printed: {printed}"
