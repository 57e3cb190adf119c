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
from tests.leaderboard.conftest import base_meta, gold_lines, validation_ids, write_entry


def _submissions(root: Path, small_ds) -> Path:
    ids = validation_ids(small_ds)
    subs = root / "submissions"
    # three scored systems with different accuracy and cost, one published number, one pending agent
    for name, wrong, cost in (("alpha", ids[:2], 5), ("bravo", ids[:6], 50), ("charlie", [], 500)):
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
    # ranked by accuracy: charlie 1.0, alpha (2 wrong), the published 0.64, bravo (6 wrong)
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


@pytest.mark.browser
def test_page_in_headless_chromium_rows_sorting_and_screenshot(tmp_path, small_ds):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium chromium-driver)")
    subs = _submissions(tmp_path, small_ds)
    readme, page = tmp_path / "README.md", tmp_path / "index.html"
    render(subs, readme, page)
    to_r, to_w = os.pipe()      # we write, chromium reads on fd 3
    from_r, from_w = os.pipe()  # chromium writes on fd 4, we read

    def child_fds():
        os.dup2(to_r, 3)
        os.dup2(from_w, 4)

    profile = tmp_path / "profile"
    profile.mkdir()
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--remote-debugging-pipe",
            "--window-size=1280,1600", page.as_uri()]
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
    finally:
        proc.kill()
        proc.wait(timeout=30)
        os.close(to_w)
        os.close(from_r)
    # the plain command-line screenshot too (what a maintainer would run by hand)
    shot2 = tmp_path / "screenshot.png"
    profile2 = tmp_path / "profile2"
    profile2.mkdir()
    subprocess.run([a for a in args if not a.startswith(("--user-data-dir", "--remote-debugging", "file:"))]
                   + [f"--user-data-dir={profile2}", f"--screenshot={shot2}", page.as_uri()],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False)
    assert shot2.exists() and shot2.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
