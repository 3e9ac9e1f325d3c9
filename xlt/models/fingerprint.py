"""A checkpoint's identity, without loading it: what a run's spec carries as `model_revision`.

    model_revision("./my-checkpoint")      -> "local-sha256:3f2a9c..."   (config, weights and tokenizer files)
    model_revision("mdeberta-v3-base")     -> "hub:microsoft/mdeberta-v3-base@<commit>"   (cache or hub)

A local folder is identified by the content of its files (config.json, weights, tokenizer files; not its path,
not README or hidden files), so weights changed in place are a new run id while a copied folder is the same
one. Hashing a 1 GB file takes about a second; each file's hash is kept in a small cache keyed by its path,
size and mtime, so it is hashed once per version. A hub model is identified by the commit of the snapshot in
the local hub cache, else by asking the hub; with neither, by `@unresolved` (the run cannot load it either).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from xlt.atomic import atomic_path
from xlt.paths import cache_home

SKIPPED_SUFFIXES = (".md", ".txt.lock", ".lock")


def cache_dir() -> Path:
    """Where file hashes are kept (xlt.paths.cache_home)."""
    return cache_home() / "fingerprints"


def file_sha256(path: Path) -> str:
    """The content hash of one file, cached per (resolved path, size, mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    key = hashlib.sha256(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:32]
    cached = cache_dir() / f"{key}.json"
    try:
        return json.loads(cached.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    digest = h.hexdigest()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp:
            tmp.write_text(json.dumps({"path": str(path), "sha256": digest}), encoding="utf-8")
    except OSError:
        pass   # a read-only cache costs only the hashing next time
    return digest


def checkpoint_files(folder: Path) -> list[Path]:
    """The files that decide a checkpoint's numbers: every regular file at its top level but documentation and
    hidden files (config.json, weights, tokenizer files, generation or preprocessing configs)."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".") and not p.name.endswith(SKIPPED_SUFFIXES))


def local_fingerprint(folder: Path) -> str:
    parts = [f"{p.name}:{file_sha256(p)}" for p in checkpoint_files(folder)]
    return "local-sha256:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def hub_commit(hub_id: str) -> str | None:
    """The commit of `hub_id`'s snapshot in the local hub cache, else the hub's current one (None offline)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(hub_id, "config.json")
        if isinstance(cached, str):
            return Path(cached).parent.name
    except Exception:  # noqa: BLE001 - an id the hub client rejects has no cached snapshot
        pass
    from xlt import hub

    if hub.is_offline():
        return None
    try:
        from huggingface_hub import HfApi

        return HfApi().model_info(hub_id).sha
    except Exception:  # noqa: BLE001 - a missing or gated repo: loading it will say why
        return None


def model_revision(model: str) -> str | None:
    """The identity of `model` (module docstring): a local folder's content, or a hub id at its commit; None
    for a name that is neither (resolving the model will say what is wrong with it)."""
    path = Path(str(model)).expanduser()
    if path.is_dir():
        return local_fingerprint(path)
    from xlt.models.registry import REGISTRY

    entry = REGISTRY.get(str(model))
    hub_id = entry.hub_id if entry is not None else str(model)
    if "/" not in hub_id or path.exists() or hub_id.startswith((".", "/", "~")):
        return None
    return f"hub:{hub_id}@{hub_commit(hub_id) or 'unresolved'}"


__all__ = ["model_revision", "local_fingerprint", "file_sha256", "checkpoint_files", "hub_commit"]
