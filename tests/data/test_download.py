"""Downloads against a real HTTP server on 127.0.0.1 standing in for the hub (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest

from comam_env.data.download import (
    KNOWN_SHA256, download_locomo, download_personamem, sha256_file,
)
from comam_env.data.errors import ChecksumError, DownloadError
from comam_env.data.personamem import load_personamem, load_personamem_dir

from .conftest import write_personamem

REPO = "bowen-upenn/PersonaMem"


class FakeHub:
    """Serves ``/datasets/{repo}/resolve/{revision}/{file}`` (HEAD and GET) from a dict."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self, body: bool) -> None:
                hub.requests.append((self.command, self.path))
                data = hub.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", '"%s"' % hashlib.sha256(data).hexdigest())
                self.send_header("X-Repo-Commit", "0" * 40)
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self):  # noqa: N802
                self._serve(False)

            def do_GET(self):  # noqa: N802
                self._serve(True)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def put_dataset_file(self, name: str, data: bytes, revision: str = "main") -> None:
        self.files[f"/datasets/{REPO}/resolve/{revision}/{name}"] = data

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub():
    h = FakeHub()
    yield h
    h.close()


@pytest.fixture
def source_files(tmp_path) -> dict[str, bytes]:
    folder = write_personamem(tmp_path / "src", "32k")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _backends():
    params = [pytest.param("urllib", id="urllib")]
    try:
        import huggingface_hub  # noqa: F401

        params.append(pytest.param("hub", id="huggingface_hub"))
    except ImportError:  # pragma: no cover
        params.append(pytest.param("hub", id="huggingface_hub", marks=pytest.mark.skip("huggingface_hub missing")))
    return params


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("backend", _backends())
def test_download_verifies_and_installs(hub, source_files, tmp_path, backend):
    for name, data in source_files.items():
        hub.put_dataset_file(name, data)
    sha = {n: hashlib.sha256(d).hexdigest() for n, d in source_files.items()}
    dest = tmp_path / "cache" / "personamem"
    out = download_personamem("32k", dest, endpoint=hub.url, backend=backend, sha256=sha, progress=False)
    assert set(out) == {"questions_32k.csv", "shared_contexts_32k.jsonl"}
    for name, path in out.items():
        assert path == dest / name and path.read_bytes() == source_files[name]
        assert (dest / f"{name}.sha256").read_text() == f"{sha[name]}  {name}\n"
    assert _leftovers(dest) == []  # temp folders (and the hub's .cache) are gone
    gets = [p for m, p in hub.requests if m == "GET"]
    assert f"/datasets/{REPO}/resolve/main/questions_32k.csv" in gets
    ds = load_personamem_dir(dest, "32k")
    assert len(ds.questions) == 5
    # a second call finds verified files and makes no request
    n = len(hub.requests)
    download_personamem("32k", dest, endpoint=hub.url, backend=backend, sha256=sha, progress=False)
    assert len(hub.requests) == n


@pytest.mark.parametrize("backend", _backends())
def test_sha256_mismatch_rejected_and_nothing_left(hub, source_files, tmp_path, backend):
    # The fixture bytes are not the real 32k files, so the published digests must reject them.
    for name, data in source_files.items():
        hub.put_dataset_file(name, data)
    dest = tmp_path / "cache" / "personamem"
    with pytest.raises(ChecksumError) as exc:
        download_personamem("32k", dest, endpoint=hub.url, backend=backend, progress=False)
    assert exc.value.expected == KNOWN_SHA256["questions_32k.csv"]
    assert exc.value.actual == hashlib.sha256(source_files["questions_32k.csv"]).hexdigest()
    assert "questions_32k.csv" in str(exc.value)
    assert sorted(p.name for p in dest.iterdir()) == []  # no partial, corrupt or temp file


def test_mismatch_keeps_existing_good_file(hub, source_files, tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    good = dest / "questions_32k.csv"
    good.write_bytes(b"previous verified copy")
    hub.put_dataset_file("questions_32k.csv", b"tampered")
    with pytest.raises(ChecksumError):
        download_personamem("32k", dest, endpoint=hub.url, backend="urllib", force=True, progress=False,
                            sha256={"questions_32k.csv": hashlib.sha256(b"expected").hexdigest()})
    assert good.read_bytes() == b"previous verified copy"
    assert sorted(p.name for p in dest.iterdir()) == ["questions_32k.csv"]


def test_missing_remote_file_is_a_download_error(hub, tmp_path):
    dest = tmp_path / "d"
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_personamem("128k", dest, endpoint=hub.url, backend="urllib", progress=False)
    assert list(dest.iterdir()) == []


def test_load_with_download_uses_hf_endpoint(hub, tmp_path, isolated_data_env, monkeypatch):
    src = write_personamem(tmp_path / "src", "128k")
    for p in src.iterdir():
        hub.put_dataset_file(p.name, p.read_bytes())
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    ds = load_personamem("128k", download=True)
    assert ds.source == str(isolated_data_env / "personamem")
    assert len(ds.questions) == 5
    # no published digest for 128k: the sidecar records what was fetched
    side = (isolated_data_env / "personamem" / "shared_contexts_128k.jsonl.sha256").read_text().split()[0]
    assert side == sha256_file(src / "shared_contexts_128k.jsonl")


def test_locomo_download(hub, tmp_path):
    payload = json.dumps([{"sample_id": "conv-1", "conversation": {}, "qa": []}]).encode()
    hub.files["/locomo10.json"] = payload
    dest = tmp_path / "locomo"
    # the released file's digest is known: a different file is rejected, nothing written
    assert KNOWN_SHA256["locomo10.json"] == "79fa87e90f04081343b8c8debecb80a9a6842b76a7aa537dc9fdf651ea698ff4"
    with pytest.raises(ChecksumError) as exc:
        download_locomo(dest, url=hub.url + "/locomo10.json", progress=False)
    assert exc.value.expected == KNOWN_SHA256["locomo10.json"]
    assert exc.value.actual == hashlib.sha256(payload).hexdigest()
    assert not (dest / "locomo10.json").exists()
    path = download_locomo(dest, url=hub.url + "/locomo10.json", progress=False,
                           sha256=hashlib.sha256(payload).hexdigest())
    assert path.read_bytes() == payload
    assert (dest / "locomo10.json.sha256").read_text().split()[0] == hashlib.sha256(payload).hexdigest()
    assert _leftovers(dest) == []

    hub.files["/bad.json"] = b"<html>rate limited</html>"
    with pytest.raises(DownloadError, match="not a JSON file"):
        download_locomo(dest, url=hub.url + "/bad.json", force=True, progress=False, sha256=None)
    assert path.read_bytes() == payload  # the good copy is untouched
    assert sorted(p.name for p in dest.iterdir()) == ["locomo10.json", "locomo10.json.sha256"]
