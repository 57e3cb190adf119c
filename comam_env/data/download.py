"""Optional download of the real benchmark files into the cache.

* **PersonaMem** — Hugging Face dataset ``bowen-upenn/PersonaMem`` (MIT),
  files ``questions_<split>.csv`` and ``shared_contexts_<split>.jsonl`` at the
  repository root, fetched through the hub URL scheme
  ``{endpoint}/datasets/{repo}/resolve/{revision}/{filename}``.
  Backends: ``"hub"`` uses :func:`huggingface_hub.hf_hub_download` (the
  ``hub`` extra); ``"urllib"`` fetches the same URL with the standard
  library; ``"auto"`` (default) uses the hub when it is installed.
  The endpoint is the ``endpoint`` argument, else ``$HF_ENDPOINT``, else
  ``https://huggingface.co`` — a mirror or a local test server can stand in.
* **LoCoMo** — ``data/locomo10.json`` of the GitHub repository
  ``snap-research/locomo`` (CC BY-NC 4.0), fetched from ``LOCOMO_URL`` (or
  ``url=`` / ``$COMAM_LOCOMO_URL``), checked to be a JSON list and to have the
  released file's sha256 (``79fa87e9…98ff4``).

Every file is downloaded into a temporary folder inside the destination,
hashed, checked against :data:`KNOWN_SHA256` when a value is known (a mismatch
raises :class:`ChecksumError` and discards the file), and only then moved into
place with ``os.replace``. An interrupted or rejected download therefore never
leaves a partial or corrupt file under the real name. The sha256 of every file
written is recorded in a ``<file>.sha256`` sidecar (``sha256sum`` format); an
existing file whose hash matches its known value or sidecar is not fetched
again unless ``force=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Mapping

from .errors import ChecksumError, DownloadError
from .paths import atomic_write_text, cache_dir, remove_stale_temps
from .personamem_files import canonical_size, file_names

#: the temp folders downloads are fetched into (mkdtemp names); a killed download leaves one behind
_DOWNLOAD_TEMP = r"\.download-[a-z0-9_]{8}"

PERSONAMEM_REPO = "bowen-upenn/PersonaMem"
DEFAULT_ENDPOINT = "https://huggingface.co"
LOCOMO_URL = "https://raw.githubusercontent.com/snap-research/locomo/main/data/locomo10.json"
LOCOMO_FILE = "locomo10.json"

#: Published sha256 values (issue 2). Other files get a sidecar on first download.
KNOWN_SHA256: Mapping[str, str] = {
    "questions_32k.csv": "cccd34cf53e0bc4d9536c04cff5ca045156d9a4e227e83327112482840bbc93c",
    "shared_contexts_32k.jsonl": "217247ebfec9e8442fc53570c795ab69f21aad08745f7de78d9beab51b122d4a",
    # snap-research/locomo data/locomo10.json (10 samples, 1,986 questions), issue 15
    "locomo10.json": "79fa87e90f04081343b8c8debecb80a9a6842b76a7aa537dc9fdf651ea698ff4",
}
_KNOWN = object()  # default of download_locomo(sha256=...): the value in KNOWN_SHA256

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_sidecar(path: Path) -> str | None:
    try:
        return _sidecar(path).read_text(encoding="utf-8").split()[0]
    except (OSError, IndexError):
        return None


def _is_current(path: Path, expected: str | None) -> bool:
    """True if ``path`` exists and matches its known sha256 (or its sidecar when none is known)."""
    if not path.is_file():
        return False
    want = expected or _read_sidecar(path)
    return want is not None and sha256_file(path) == want


def _urllib_fetch(url: str, out: Path, progress: bool, timeout: float) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "comam-env"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(out, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=total, unit="B", unit_scale=True, desc=out.name.split(".part")[0])
            try:
                for block in iter(lambda: resp.read(_CHUNK), b""):
                    f.write(block)
                    if bar is not None:
                        bar.update(len(block))
            finally:
                if bar is not None:
                    bar.close()
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from None


def _hub_fetch(repo: str, filename: str, revision: str, endpoint: str, tmpdir: Path, progress: bool) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise DownloadError("huggingface_hub is not installed: pip install 'comam-env[hub]' "
                            "or use backend='urllib'") from exc
    kwargs = {}
    if not progress:
        from tqdm import tqdm

        class _Silent(tqdm):  # hf_hub takes a tqdm class; this one never prints
            def __init__(self, *a, **kw):
                kw["disable"] = True
                super().__init__(*a, **kw)

        kwargs["tqdm_class"] = _Silent
    try:
        return Path(hf_hub_download(repo, filename, repo_type="dataset", revision=revision,
                                    local_dir=tmpdir, endpoint=endpoint, **kwargs))
    except Exception as exc:  # hub errors come in many classes; report them uniformly
        raise DownloadError(f"{endpoint}: could not download {filename} from dataset {repo}@{revision}: "
                            f"{type(exc).__name__}: {exc}") from exc


def _install(tmp_file: Path, target: Path, expected: str | None, source: str) -> Path:
    """Verify ``tmp_file`` and move it over ``target``; write the sidecar."""
    actual = sha256_file(tmp_file)
    if expected is not None and actual != expected:
        tmp_file.unlink(missing_ok=True)
        raise ChecksumError(target.name, expected, actual, source)
    os.replace(tmp_file, target)
    atomic_write_text(_sidecar(target), f"{actual}  {target.name}\n")
    return target


def resolve_endpoint(endpoint: str | None = None) -> str:
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def download_personamem(split: str = "32k", dest: str | os.PathLike | None = None, *,
                        endpoint: str | None = None, revision: str = "main", backend: str = "auto",
                        repo: str = PERSONAMEM_REPO, sha256: Mapping[str, str] | None = None,
                        force: bool = False, progress: bool = True, timeout: float = 60.0) -> dict[str, Path]:
    """Download one PersonaMem split; returns ``{file name: path}``.

    Args:
        split: ``32k``, ``128k`` or ``1M``.
        dest: target folder (default ``<cache>/personamem``).
        endpoint: hub base URL (default ``$HF_ENDPOINT`` or huggingface.co).
        revision: branch, tag or commit of the dataset repository.
        backend: ``"auto"``, ``"hub"`` (huggingface_hub) or ``"urllib"``.
        sha256: expected digests by file name, overriding :data:`KNOWN_SHA256`.
        force: download even when a verified file is already there.
    """
    size = canonical_size(split)
    dest = Path(dest) if dest is not None else cache_dir() / "personamem"
    endpoint = resolve_endpoint(endpoint)
    expected_all = {**KNOWN_SHA256, **(sha256 or {})}
    if backend == "auto":
        try:
            import huggingface_hub  # noqa: F401

            backend = "hub"
        except ImportError:
            backend = "urllib"
    if backend not in ("hub", "urllib"):
        raise ValueError(f"backend must be 'auto', 'hub' or 'urllib', not {backend!r}")
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for name in file_names(size):
        target = dest / name
        expected = expected_all.get(name)
        if not force and _is_current(target, expected):
            out[name] = target
            continue
        url = f"{endpoint}/datasets/{repo}/resolve/{urllib.parse.quote(revision, safe='')}/{urllib.parse.quote(name)}"
        remove_stale_temps(dest, dir_pattern=_DOWNLOAD_TEMP)  # downloads killed earlier
        tmpdir = Path(tempfile.mkdtemp(prefix=".download-", dir=dest))
        try:
            if backend == "hub":
                fetched = _hub_fetch(repo, name, revision, endpoint, tmpdir, progress)
            else:
                fetched = tmpdir / (name + ".part")
                _urllib_fetch(url, fetched, progress, timeout)
            out[name] = _install(fetched, target, expected, url)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return out


def download_locomo(dest: str | os.PathLike | None = None, *, url: str | None = None, force: bool = False,
                    progress: bool = True, timeout: float = 60.0, sha256: Any = _KNOWN) -> Path:
    """Download ``locomo10.json`` into ``dest`` (default ``<cache>/locomo``); returns its path.

    The file must parse as a JSON list and match ``sha256`` — by default the known
    digest of the released file (``KNOWN_SHA256["locomo10.json"]``), also for a
    mirror given by ``url``; pass another digest for a different revision, or
    ``None`` to accept any JSON list. The sha256 is recorded in
    ``locomo10.json.sha256`` so later runs can detect a changed or damaged copy.
    """
    dest = Path(dest) if dest is not None else cache_dir() / "locomo"
    url = url or os.environ.get("COMAM_LOCOMO_URL") or LOCOMO_URL
    expected = KNOWN_SHA256.get(LOCOMO_FILE) if sha256 is _KNOWN else sha256
    target = dest / LOCOMO_FILE
    if not force and _is_current(target, expected):
        return target
    dest.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(dest, dir_pattern=_DOWNLOAD_TEMP)  # downloads killed earlier
    tmpdir = Path(tempfile.mkdtemp(prefix=".download-", dir=dest))
    try:
        part = tmpdir / (LOCOMO_FILE + ".part")
        _urllib_fetch(url, part, progress, timeout)
        try:
            with open(part, encoding="utf-8") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DownloadError(f"{url}: not a JSON file ({exc}); nothing was written") from None
        if not isinstance(data, list):
            raise DownloadError(f"{url}: expected a JSON list of LoCoMo samples, got {type(data).__name__}; "
                                "nothing was written")
        return _install(part, target, expected, url)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
