"""A task file's `protocols:` block: where the data of the protocols beyond zero-shot lives (docs/protocols.md).

    protocols:
      translate-train: {languages: [fr, de], sources: [...]}   # the train split translated into each target
      translate-test: {sources: [...]}                         # evaluation splits translated into the source
      few-shot: {split: validation}                            # where shots are drawn from

Checked key by key with the rest of the file (xlt.tasks.taskspec); what a run reads of it is
xlt.tasks.protocol_data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from xlt.protocols import DATA_KINDS, FEW_SHOT, TRANSLATE_TEST, TRANSLATE_TRAIN

BLOCK_KEYS = {TRANSLATE_TRAIN: ("languages", "sources"), TRANSLATE_TEST: ("languages", "sources"),
              FEW_SHOT: ("languages", "sources", "split")}


@dataclass(frozen=True)
class ProtocolData:
    """One entry of a task file's `protocols:` block."""

    kind: str                                  # translate-train | translate-test | few-shot
    languages: tuple[str, ...] | None = None   # target languages that have it (None: every target)
    sources: tuple = ()                        # Source values; () = the default (xlt.tasks.protocol_data)
    split: str | None = None                   # few-shot: the split shots are drawn from

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.languages is not None:
            out["languages"] = list(self.languages)
        if self.sources:
            out["sources"] = [s.to_dict() for s in self.sources]
        if self.split is not None:
            out["split"] = self.split
        return out


def check_protocols(ck: Any, raw: Mapping, build_source: Callable[..., Any], *, languages: Sequence[str] | None,
                    source_lang: str | None) -> tuple[ProtocolData, ...]:
    """The `protocols:` block of a task file (`raw`), every problem added to the file's Checker `ck`.
    `build_source(ck, raw, path)` checks one source mapping as `sources:` items are checked."""
    ck.unknown_keys(raw, ("protocols",), DATA_KINDS)
    out = []
    for kind in (k for k in DATA_KINDS if k in raw):
        path = ("protocols", kind)
        block = raw[kind] if raw[kind] is not None else {}
        if not isinstance(block, dict):
            ck.add(path, f"protocols.{kind} must be a mapping (or {{}} for the defaults)",
                   "write e.g. `languages: [fr, de]` under it, or `{}`")
            continue
        ck.unknown_keys(block, path, BLOCK_KEYS[kind])
        langs = ck.str_list(block, path, "languages", required=False)
        ck.names(path + ("languages",), langs, "language")
        for i, lang in enumerate(langs or ()):
            if languages is not None and lang not in languages or lang == source_lang:
                ck.add(path + ("languages", i), f"protocols.{kind} names {lang!r}, which is not a target "
                       "language of the task", f"list languages of `languages:` other than {source_lang!r}")
        split = ck.str_(block, path, "split", required=False)
        ck.names(path + ("split",), split, "split")
        sources = []
        raw_sources = block.get("sources")
        if raw_sources is not None:
            if not isinstance(raw_sources, list) or not raw_sources:
                ck.add(path + ("sources",), f"protocols.{kind}.sources must be a non-empty list",
                       "write `sources:` then `- hub: ...` or `- files: ...` items, or leave it out")
            else:
                sources = [s for i, item in enumerate(raw_sources)
                           if (s := build_source(ck, item, path + ("sources", i))) is not None]
        out.append(ProtocolData(kind, tuple(langs) if langs else None, tuple(sources), split))
    return tuple(out)


def declared(task: Any, kind: str) -> ProtocolData | None:
    """The task's block for one data kind, None when its file has none."""
    return next((p for p in task.protocols if p.kind == kind), None)
