"""xlt.labelmatch: a checkpoint's labels matched to a task's by name (the spellings the hub uses), never by
position; and the spec's --label-map (xlt.spec)."""

import pytest

from xlt.errors import XltError
from xlt.labelmatch import match_labels
from xlt.spec import RunSpec, parse_label_map

NLI = ["entailment", "neutral", "contradiction"]


@pytest.mark.parametrize("checkpoint, columns, how", [
    (["ENTAILMENT", "NEUTRAL", "CONTRADICTION"], (0, 1, 2), "same name up to case"),
    (["contradiction", "neutral", "entailment"], (2, 1, 0), "same name"),          # roberta-large-mnli's order
    (["Contradictory", "Entails", "Neutral"], (1, 2, 0), None),
    (["neutral", "contradiction", "entailment", "other"], (2, 0, 1), "same name"),
])
def test_nli_labels_are_found_by_name_in_any_order(checkpoint, columns, how):
    """Would catch: a match by position (every case but the first would be wrong) or a spelling the hub uses
    (contradictory, entails, upper case) refused."""
    match = match_labels(checkpoint, NLI)
    assert match.columns == columns and match.never_predicted == ()
    if how:
        assert set(match.how) == {how}
    assert match.unused == (("other",) if len(checkpoint) == 4 else ())


def test_plain_numbers_are_the_task_files_label_ids_and_placeholders_are_not():
    """Would catch: `LABEL_1` read as label 1 (transformers' placeholder names say nothing), or a checkpoint
    labelled as its data was ("0", "1": PAWS-X's not_paraphrase, paraphrase) refused."""
    match = match_labels(["1", "0"], ["not_paraphrase", "paraphrase"])
    assert match.columns == (1, 0) and set(match.how) == {"the task file's label id"}
    assert match_labels(["Not Paraphrase", "paraphrase"], ["not_paraphrase", "paraphrase"]).columns == (0, 1)
    with pytest.raises(XltError, match=r"--label-map LABEL_0=not_paraphrase,LABEL_1=paraphrase"):
        match_labels(["LABEL_0", "LABEL_1"], ["not_paraphrase", "paraphrase"], task_name="task 'pawsx'")


def test_ambiguous_and_wrong_label_maps_are_refused():
    """Would catch: two checkpoint labels that read as one task label silently resolved by order, or a
    --label-map naming labels that do not exist."""
    with pytest.raises(XltError, match="all read as"):
        match_labels(["Entailment", "ENTAILMENT", "neutral", "contradiction"], NLI)
    assert match_labels(["Entailment", "entails", "neutral", "contradiction"], NLI).columns == (0, 2, 3)
    with pytest.raises(XltError, match="does not have"):
        match_labels(["a", "b", "c"], NLI, [("x", "entailment")])
    with pytest.raises(XltError, match="not a label of"):
        match_labels(["a", "b", "c"], NLI, [("a", "entailed")])
    with pytest.raises(XltError, match="two checkpoint labels"):
        match_labels(["a", "b", "c"], NLI, [("a", "neutral"), ("b", "neutral")])
    partial = match_labels(["a", "neutral", "c"], NLI, [("a", "entailment")])
    assert partial.columns == (0, 1, None) and partial.never_predicted == ("contradiction",)


def test_the_label_map_is_one_canonical_value_of_an_evaluating_spec():
    """Would catch: a label map that changes the run id with its order, or one accepted for a run that
    fine-tunes (its head learns the task's labels)."""
    pairs = parse_label_map("LABEL_2=contradiction, LABEL_0=entailment,LABEL_1=neutral")
    a = RunSpec("m", "xnli", protocol="evaluate", label_map=pairs)
    b = RunSpec("m", "xnli", protocol="evaluate", label_map=tuple(reversed(pairs)))
    assert a.run_id == b.run_id and a.label_map[0] == ("LABEL_0", "entailment")
    assert RunSpec.from_dict(a.to_dict()) == a
    assert RunSpec("m", "xnli", protocol="evaluate").run_id != a.run_id
    assert "label_map" not in RunSpec("m", "xnli").to_dict()          # records of runs read as before
    with pytest.raises(XltError, match="applies to `xlt eval`"):
        RunSpec("m", "xnli", label_map=pairs)
    with pytest.raises(XltError, match="more than once"):
        RunSpec("m", "xnli", protocol="evaluate", label_map=(("a", "neutral"), ("a", "entailment")))
    with pytest.raises(XltError, match="not CHECKPOINT_LABEL=TASK_LABEL"):
        parse_label_map("LABEL_0:entailment")
