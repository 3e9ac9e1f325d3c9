"""Is the Hugging Face hub reachable? Decided once per process, so a load with no network fails in seconds.

`HF_HUB_OFFLINE` or `HF_DATASETS_OFFLINE` set means offline, without a probe. Otherwise the first load that
needs the hub makes one TCP connection to the hub's host (`HF_ENDPOINT`, default huggingface.co) with a
short timeout. When it fails, the hub clients are put in their offline mode for the rest of the process:
huggingface_hub and datasets then answer from their caches or fail at once, instead of retrying for ~25 s
per file (measured: `datasets.load_dataset` of a pinned XNLI revision with no network took 24 s to fail).
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0
_TRUE = ("1", "true", "yes", "on")
_offline: bool | None = None      # the probe's answer, once made
_reason = ""


def _env_offline() -> str | None:
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return f"{name} is set"
    return None


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "").strip() or "https://huggingface.co"


def is_offline() -> bool:
    """True when the hub cannot be used (module docstring); probes the network at most once per process."""
    global _offline, _reason
    if _env_offline():
        return True
    if _offline is None:
        url = urlparse(endpoint())
        host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
            _offline, _reason = False, ""
        except OSError as exc:
            _offline, _reason = True, f"no network: {host}:{port} cannot be reached ({exc.__class__.__name__})"
        if _offline:
            go_offline()
    return _offline


def offline_reason() -> str:
    """Why the hub counts as offline, for messages: the variable that is set, or the failed probe."""
    return _reason or _env_offline() or "the hub is unreachable"


def go_offline() -> None:
    """Put huggingface_hub and datasets in their offline mode (cache only) for this process and its children.
    Both read the variables when imported; if they already are, their module constants are set as well."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    config = sys.modules.get("datasets.config")
    if config is not None:
        config.HF_HUB_OFFLINE = True
        config.HF_DATASETS_OFFLINE = True


def download_command(repo_id: str, repo_type: str = "model", revision: str | None = None) -> str:
    """The command that downloads a hub repository into a folder, with the hub client's current CLI (`hf`)."""
    parts = ["hf", "download", repo_id]
    if repo_type != "model":
        parts += ["--repo-type", repo_type]
    if revision:
        parts += ["--revision", revision]
    return " ".join(parts + ["--local-dir", "DIR"])


def is_cached(repo_id: str, filename: str = "config.json") -> bool:
    """Whether the hub cache holds `filename` of a model repository (so an offline load can still work)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of transformers
        return False
    return isinstance(try_to_load_from_cache(repo_id, filename), str)
