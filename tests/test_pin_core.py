"""Pins on the round-3 core that the scoped mutation run (scripts/mutation.py build, heads, label-view) showed
unguarded: the canonical --split value, the data directory a spec may read, the head table's outputs and the
label view's never-chosen column. Each test names the one-line bugs it kills."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from xlt.errors import XltError
from xlt.models.heads import HEADS, _hidden, _spans, get_head, head_width
from xlt.models.label_view import LabelView
from xlt.recipes import build_spec, effective_data_dir, normalise_languages, normalise_splits
from xlt.spec import RunSpec
from xlt.tasks import get_task


# --- the spec builder ---------------------------------------------------------------------------------------

def test_splits_are_one_canonical_value_and_all_of_them_is_none():
    """Would catch: `==` turned into `!=`/`<`/`>` in the every-split check (a full list recorded as a subset,
    another run id for one experiment); a comma string not split; an empty or unknown split accepted."""
    xnli = get_task("xnli")
    assert normalise_splits(xnli, None) is None
    assert normalise_splits(xnli, "validation,test") is None
    assert normalise_splits(xnli, ["test", "validation", "test"]) is None
    assert normalise_splits(xnli, " test ") == ("test",)
    assert normalise_splits(xnli, "validation") == ("validation",)
    for bad in ("", ["dev"], "test,dev", []):
        with pytest.raises(XltError, match="split"):
            normalise_splits(xnli, bad)
    with pytest.raises(XltError, match=r"unknown split\(s\) dev for task"):   # the message names the split
        normalise_splits(xnli, "test,dev")


def test_every_language_is_none_and_a_subset_is_sorted_with_the_source():
    """Would catch: a full language list recorded as a subset (the `==` of the every-language check)."""
    xnli = get_task("xnli")
    assert normalise_languages(xnli, ",".join(reversed(xnli.languages))) is None
    assert normalise_languages(xnli, "sw,fr") == ("en", "fr", "sw")


def test_the_data_directory_must_agree_with_the_specs_data_source(tmp_path, monkeypatch):
    """Would catch: a local spec run without a directory, a hub spec silently reading a local one (either
    comparison or the `and` inverted), and build_spec recording the wrong data_source."""
    monkeypatch.delenv("XLT_DATA_DIR", raising=False)
    local = RunSpec(model="m", task="xnli", data_source="local")
    hub = RunSpec(model="m", task="xnli", data_source="hub")
    with pytest.raises(XltError, match="--data-dir"):
        effective_data_dir(local, None)
    with pytest.raises(XltError, match="data_source='hub'"):
        effective_data_dir(hub, tmp_path)
    assert effective_data_dir(local, tmp_path) == tmp_path
    assert effective_data_dir(hub, None) is None
    monkeypatch.setenv("XLT_DATA_DIR", str(tmp_path))
    assert effective_data_dir(local, None) == tmp_path


def test_build_spec_records_where_the_data_comes_from(shared_data, monkeypatch):
    monkeypatch.delenv("XLT_DATA_DIR", raising=False)
    xnli = get_task("xnli")
    local = build_spec("some/model", xnli, 1, data_dir=shared_data, languages="fr", splits="validation")
    assert local.data_source == "local" and local.splits == ("validation",)
    assert local.languages == ("en", "fr")


# --- the head table -------------------------------------------------------------------------------------------

def test_qa_output_stacks_start_then_end_on_the_last_axis():
    """Would catch: start and end swapped, or stacked on another axis (dim=-1 mutated to 1, 0 or -2)."""
    start, end = torch.arange(6.).view(2, 3), -torch.arange(6.).view(2, 3)
    spans = _spans(SimpleNamespace(start_logits=start, end_logits=end), None)
    assert spans.shape == (2, 3, 2)
    assert torch.equal(spans[..., 0], start) and torch.equal(spans[..., 1], end)


def test_encoder_output_is_the_chosen_layer_or_every_layer_stacked():
    """Would catch: the default layer not the last (-1 mutated to 1, 0 or -2), `is None` inverted."""
    layers = tuple(torch.full((1, 2, 3), float(i)) for i in range(4))     # embeddings + 3 layers
    out = SimpleNamespace(hidden_states=layers)
    assert torch.equal(_hidden(out, object()), layers[-1])                  # no output_layer: the last
    assert torch.equal(_hidden(out, SimpleNamespace(output_layer=2)), layers[2])
    stacked = _hidden(out, SimpleNamespace(output_layer=None))
    assert stacked.shape == (4, 1, 2, 3) and torch.equal(stacked[3], layers[3])


def test_head_width_is_the_heads_own_or_the_label_count():
    """Would catch: a wrong num_labels for a fixed-width head accepted (`!=` mutated to `>` or `>=`)."""
    assert head_width(get_head("classification"), 3) == 3
    assert head_width(get_head("qa"), None) == 2 and head_width(get_head("qa"), 2) == 2
    assert head_width(get_head("encoder"), None) == 0
    for wrong in (1, 3):
        with pytest.raises(XltError, match="num_labels"):
            head_width(get_head("qa"), wrong)
    with pytest.raises(XltError, match="unknown head"):
        get_head("regression")
    assert set(HEADS) == {"classification", "token", "qa", "encoder"}


# --- the label view -------------------------------------------------------------------------------------------

class FixedLogits(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.logits


def test_a_task_label_no_checkpoint_label_maps_to_is_never_predicted():
    """Would catch: the filler column the highest logit or zero instead of the lowest (the minus sign of
    finfo.min dropped), the filler not added, and the index buffer saved into state_dict (persistent=True
    puts a key no checkpoint has)."""
    logits = torch.tensor([[[-1e30, -5e29], [3.0, -2.0]]])                   # (1, 2 tokens, 2 checkpoint labels)
    view = LabelView(FixedLogits(logits), columns=(1, None, 0), width=2)
    out = view(torch.zeros(1, 2, dtype=torch.long))
    assert out.shape == (1, 2, 3)
    assert torch.equal(out[..., 0], logits[..., 1]) and torch.equal(out[..., 2], logits[..., 0])
    assert (out[..., 1] == torch.finfo(logits.dtype).min).all()
    assert (out.argmax(-1) != 1).all()                                       # even where every logit is tiny
    assert "index" not in view.state_dict()
    plain = LabelView(FixedLogits(logits), columns=(1, 0), width=2)
    assert not plain.fills and plain(torch.zeros(1, 2, dtype=torch.long)).shape == (1, 2, 2)
