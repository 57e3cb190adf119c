"""Rendering: README markers, determinism, self-contained HTML; the page in headless Chromium.

The browser test drives Chromium through the DevTools protocol over
``--remote-debugging-pipe`` (NUL-separated JSON on file descriptors 3/4) with
the standard library only: it loads the rendered page, reads the table rows,
clicks a header twice (ascending, then descending) and saves a screenshot to
the test's tmp dir (through the protocol, and once more with ``--screenshot``). It is skipped, saying why, when Chromium is not installed
(Debian: ``apt-get install chromium chromium-driver``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from leaderboard.render import END_MARK, START_MARK, RenderError, render
from tests.leaderboard.conftest import (
    base_meta,
    gold_lines,
    validation_ids,
    write_entry,
)


def _submissions(root: Path, small_ds) -> Path:
    ids = validation_ids(small_ds)
    subs = root / "submissions"
    # three scored systems with different accuracy and cost, one published number, one pending agent
    # (bravo gets half the split wrong: below the published 0.64 at any split size, alpha above it)
    for name, wrong, cost in (("alpha", ids[:2], 5), ("bravo", ids[:len(ids) // 2], 50), ("charlie", [], 500)):
        lines = gold_lines(small_ds, wrong=set(wrong))
        for l in lines:
            l["tokens_in"] = cost
        write_entry(subs / name, base_meta(name=f"System {name}"), lines)
    write_entry(subs / "paper", base_meta(kind="reported", name="Paper <CoMAM>", reported_accuracy=0.64,
                                          reported_source="Table 2", verified=False), None)
    write_entry(subs / "agent", base_meta(kind="agent", track="synthetic-32k-hidden", entry_point="pkg.mod:make"), None)
    return subs


def test_render_writes_readme_between_markers_and_is_deterministic(tmp_path, small_ds):
    subs = _submissions(tmp_path, small_ds)
    readme = tmp_path / "README.md"
    readme.write_text(f"# Docs\nintro text\n\n{START_MARK}\nold table\n{END_MARK}\n\nfooter text\n")
    page = tmp_path / "index.html"
    result = render(subs, readme, page)
    assert result["n_entries"] == 4 and result["pending"] == 1
    text = readme.read_text()
    assert text.startswith("# Docs\nintro text\n") and text.endswith("footer text\n") and "old table" not in text
    rows = [l for l in text.splitlines() if l.startswith("| ") and ("System" in l or "Paper" in l)]
    # ranked by accuracy: charlie 1.0, alpha (2 wrong), the published 0.64, bravo (half wrong)
    assert [re.search(r"System \w+|Paper", r).group(0) for r in rows] == ["System charlie", "System alpha", "Paper",
                                                                           "System bravo"]
    assert "reported, not verified" in text and "awaiting a hidden-track run" in text
    first_readme, first_page = readme.read_bytes(), page.read_bytes()
    render(subs, readme, page)
    assert readme.read_bytes() == first_readme and page.read_bytes() == first_page
    html = page.read_text()
    assert "Paper &lt;CoMAM&gt;" in html and "Paper <CoMAM>" not in html  # escaped
    assert "<script src" not in html and "<link" not in html and "@import" not in html  # self-contained
    assert html.count("<svg") == 1 and html.count('class="pt"') == 3


def test_render_refuses_readme_without_markers_and_invalid_entries(tmp_path, small_ds):
    subs = _submissions(tmp_path, small_ds)
    readme = tmp_path / "README.md"
    readme.write_text("# hand-written docs\n")
    with pytest.raises(RenderError, match="markers not found"):
        render(subs, readme, tmp_path / "index.html")
    assert readme.read_text() == "# hand-written docs\n" and not (tmp_path / "index.html").exists()
    write_entry(subs / "broken", base_meta(split="train"), gold_lines(small_ds))
    readme.write_text(f"{START_MARK}\n{END_MARK}\n")
    with pytest.raises(RenderError, match="broken: invalid"):
        render(subs, readme, tmp_path / "index.html")
    result = render(subs, readme, tmp_path / "index.html", skip_invalid=True)
    assert result["n_entries"] == 4 and result["skipped"][0].startswith("broken: invalid")


def test_hidden_run_entries_render_and_clear_pending_agents(tmp_path, small_ds, monkeypatch):
    from leaderboard.run_agent import run_agent

    subs = _submissions(tmp_path, small_ds)
    meta = base_meta(kind="agent", track="synthetic-32k-hidden", name="Hidden longest",
                     entry_point="tests.leaderboard.test_hidden:make_longest_agent")
    agent = write_entry(subs / "agent-longest", meta, None)
    readme, page = tmp_path / "README.md", tmp_path / "index.html"
    assert render(subs, readme, page)["pending"] == 2
    run_agent(str(agent), "synthetic-32k-hidden", subs / "hidden-longest", secret="s" * 20,
              knobs={"n_personas": 2}, progress=False)
    result = render(subs, readme, page)
    assert result["pending"] == 1 and "hidden-longest" in result["entries"]
    text = readme.read_text()
    # without the secret the run cannot be verified: listed, but not ranked
    assert "### `synthetic-32k-hidden`" in text and "| – | [Hidden longest](https://example.org/sys) | hidden run, unverified |" in text
    monkeypatch.setenv("COMAM_HIDDEN_SEED", "s" * 20)
    render(subs, readme, page)
    text = readme.read_text()
    assert "### `synthetic-32k-hidden`" in text and "| 1 | [Hidden longest](https://example.org/sys) | hidden run |" in text


# --------------------------------------------------------------------------- Chromium


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _CDP:
    """Minimal DevTools-protocol client over --remote-debugging-pipe (stdlib only)."""

    def __init__(self, proc: subprocess.Popen, to_browser: int, from_browser: int) -> None:
        self.proc, self.wfd, self.rfd = proc, to_browser, from_browser
        self.buf = b""
        self.next_id = 0

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30.0):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply to {method}")
            ready, _, _ = select.select([self.rfd], [], [], left)
            if ready:
                chunk = os.read(self.rfd, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
                self.buf += chunk


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")


@contextlib.contextmanager
def _chromium_page(page: Path, tmp_path: Path, width: int = 1280, height: int = 1600):
    """Open ``page`` in a fresh headless Chromium; yields (cdp, session, js) once the tables are there."""
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium chromium-driver)")
    to_r, to_w = os.pipe()      # we write, chromium reads on fd 3
    from_r, from_w = os.pipe()  # chromium writes on fd 4, we read

    def child_fds():
        os.dup2(to_r, 3)
        os.dup2(from_w, 4)

    profile = tmp_path / f"profile-{width}"
    profile.mkdir()
    args = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
            f"--window-size={width},{height}", "--hide-scrollbars", page.as_uri()]
    proc = subprocess.Popen(args, preexec_fn=child_fds, close_fds=False, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(to_r)
    os.close(from_w)
    try:
        cdp = _CDP(proc, to_w, from_r)
        target = None
        for _ in range(100):
            pages = [t for t in cdp.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
            target = next((t for t in pages if t["url"].startswith("file://")), None)
            if target:
                break
            time.sleep(0.1)
        assert target is not None, "no page target for the rendered file"
        session = cdp.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]

        def js(expr: str):
            res = cdp.call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)
            assert "exceptionDetails" not in res, res
            return res["result"].get("value")

        for _ in range(100):
            if js("document.readyState === 'complete' && !!document.querySelector('table.main')"):
                break
            time.sleep(0.1)
        yield cdp, session, js
    finally:
        proc.kill()
        proc.wait(timeout=30)
        os.close(to_w)
        os.close(from_r)


@pytest.mark.browser
def test_page_in_headless_chromium_rows_sorting_and_screenshot(tmp_path, small_ds):
    subs = _submissions(tmp_path, small_ds)
    readme, page = tmp_path / "README.md", tmp_path / "index.html"
    render(subs, readme, page)
    with _chromium_page(page, tmp_path) as (cdp, session, js):
        state = js("""(() => {
          const t = document.querySelector('table.main');
          const names = () => Array.from(t.tBodies[0].rows).map(r => r.getAttribute('data-entry'));
          const th = Array.from(t.tHead.rows[0].cells).find(h => h.textContent.trim() === 'tokens in / q');
          const before = names();
          th.click(); const asc = names(); const ascAttr = th.getAttribute('aria-sort');
          th.click(); const desc = names(); const descAttr = th.getAttribute('aria-sort');
          const nameTh = Array.from(t.tHead.rows[0].cells).find(h => h.textContent.trim() === 'system');
          nameTh.click(); const byName = names();
          return {before, asc, ascAttr, desc, descAttr, byName,
                  types: document.querySelectorAll('table.types tbody tr').length,
                  points: document.querySelectorAll('svg g.pt').length,
                  reported: document.querySelectorAll('tr.reported').length};
        })()""")
        assert state["before"] == ["charlie", "alpha", "paper", "bravo"]  # ranked by accuracy
        assert state["asc"] == ["paper", "alpha", "bravo", "charlie"] and state["ascAttr"] == "ascending"
        assert state["desc"] == ["charlie", "bravo", "alpha", "paper"] and state["descAttr"] == "descending"
        assert state["byName"] == ["paper", "alpha", "bravo", "charlie"]
        assert state["types"] == 3 and state["points"] == 3 and state["reported"] == 1
        shot = cdp.call("Page.captureScreenshot", {"format": "png"}, session)
        png = tmp_path / "leaderboard.png"
        png.write_bytes(base64.b64decode(shot["data"]))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    # the plain command-line screenshot too (what a maintainer would run by hand)
    shot2 = tmp_path / "screenshot.png"
    profile2 = tmp_path / "profile2"
    profile2.mkdir()
    subprocess.run([_chromium(), *CHROMIUM_FLAGS, "--window-size=1280,1600", f"--user-data-dir={profile2}",
                    f"--screenshot={shot2}", page.as_uri()],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False)
    assert shot2.exists() and shot2.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _crowded(root: Path, small_ds) -> Path:
    """Entries built to collide: equal accuracy and cost (coincident points), long names and model
    lists, and published numbers on the same line."""
    ids = validation_ids(small_ds)
    subs = root / "crowded"
    for k in range(10):
        lines = gold_lines(small_ds, wrong=set(ids[: k % 3]))
        for line in lines:
            line["tokens_in"] = 1000 + 10 * (k % 2)
        name = f"System {k} with a deliberately long descriptive name, a retriever and a profiler " + "x" * k
        write_entry(subs / f"s{k}", base_meta(name=name[:120], models=["some-org/a-very-long-embedding-model-name-v2"] * 3,
                                              training_method="CoMAM (adaptive rank-consistency credit, per-agent "
                                                              "GRPO), 600 iterations of 8 queries"), lines)
    for k, acc in enumerate((0.64, 0.64, 0.63)):
        write_entry(subs / f"paper{k}", base_meta(kind="reported", name=f"Published method number {k} (paper)",
                                                  reported_accuracy=acc, reported_source="Table 2", verified=False), None)
    return subs


def test_scatter_labels_are_placed_without_overlap(small_ds, tmp_path):
    """The placement's own (estimated) boxes never overlap, even for coincident points."""
    from leaderboard.render import LABEL_FONT_PX, _box, place_labels, text_width

    anchors = [(300.0, 200.0, f"coincident point {k}", False) for k in range(12)]
    anchors += [(56.0, 150.0, f"reported line {k} 0.64 (reported, not verified)", True) for k in range(3)]
    labels = place_labels(anchors, (56, 16, 940, 376), [(295, 195, 305, 205)])
    boxes = [_box(float(lab["x"]), float(lab["y"]), lab["anchor"], text_width(lab["text"])) for lab in labels]
    for i, a in enumerate(boxes):
        assert 56 <= a[0] and a[2] <= 940 and 16 <= a[1] and a[3] <= 376
        for b in boxes[i + 1:]:
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1]), (a, b)
    assert labels == place_labels(anchors, (56, 16, 940, 376), [(295, 195, 305, 205)])  # deterministic
    assert sum(lab["leader"] is not None for lab in labels) >= 6  # far labels point back to their marker
    assert text_width("mmmm") > text_width("iiii") > 0 and LABEL_FONT_PX == 10


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _layout_at_1400(page: Path, tmp_path: Path, png_name: str) -> dict:
    """Measure ``page`` in a 1,400 px wide window; asserts the width checks; returns the layout."""
    with _chromium_page(page, tmp_path, width=1400, height=1000) as (cdp, session, js):
        layout = js("""(() => {
          const box = e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
          const tables = Array.from(document.querySelectorAll('table')).map(t => ({
            id: t.id, right: t.getBoundingClientRect().right, parentRight: t.parentElement.getBoundingClientRect().right,
            overflow: t.parentElement.scrollWidth - t.parentElement.clientWidth}));
          const svgs = Array.from(document.querySelectorAll('svg')).map(svg => ({
            plot: box(svg.querySelector('rect')),
            labels: Array.from(svg.querySelectorAll('g.pt text, g.rep text')).map(e => [e.textContent, ...box(e)])}));
          return {scrollWidth: document.documentElement.scrollWidth, tables, svgs};
        })()""")
        metrics = cdp.call("Page.getLayoutMetrics", {}, session)
        width = metrics["cssContentSize"]["width"]
        shot = cdp.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {
            "x": 0, "y": 0, "width": width, "height": min(metrics["cssContentSize"]["height"], 6000), "scale": 1}},
            session)
    png = tmp_path / png_name
    png.write_bytes(base64.b64decode(shot["data"]))
    assert _png_size(png)[0] <= 1400 and width <= 1400 and layout["scrollWidth"] <= 1400
    for t in layout["tables"]:
        assert t["overflow"] <= 0 and t["right"] <= t["parentRight"] + 0.5, t
    for svg in layout["svgs"]:
        px0, py0, px1, py1 = svg["plot"]
        labels = svg["labels"]
        for i, (text, l, t, r, b) in enumerate(labels):
            assert px0 - 0.5 <= l and r <= px1 + 0.5 and py0 - 0.5 <= t and b <= py1 + 0.5, text
            for other, l2, t2, r2, b2 in labels[i + 1:]:
                assert min(r, r2) <= max(l, l2) or min(b, b2) <= max(t, t2), f"{text!r} overlaps {other!r}"
    return layout


@pytest.mark.browser
def test_page_fits_1400px_and_scatter_labels_do_not_overlap(tmp_path, small_ds):
    subs = _crowded(tmp_path, small_ds)
    readme, page = tmp_path / "README.md", tmp_path / "index.html"
    render(subs, readme, page)
    layout = _layout_at_1400(page, tmp_path, "crowded-1400.png")
    assert len(layout["tables"]) == 2 and len(layout["svgs"]) == 1
    assert len(layout["svgs"][0]["labels"]) == 13  # 10 points and 3 published lines, all labelled


@pytest.mark.browser
def test_the_committed_leaderboard_page_fits_1400px(tmp_path):
    from leaderboard import LEADERBOARD_DIR

    layout = _layout_at_1400(LEADERBOARD_DIR / "index.html", tmp_path, "committed-1400.png")
    assert len(layout["tables"]) >= 5 and sum(len(s["labels"]) for s in layout["svgs"]) >= 3
