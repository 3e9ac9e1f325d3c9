"""Tiny stand-ins for hub downloads, built locally: tests never touch the network.

A SentencePiece model trained here on real XNLI sentences, wrapped the way a hub repository ships it
(`spm.model` + `tokenizer_config.json`, loaded with AutoTokenizer), and tiny random checkpoints written
with transformers' own `save_pretrained`, so their layout is exactly the hub's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VOCAB_SIZE = 1000  # SentencePiece pieces; XLM-R adds its fairseq offset and <mask> (1005 ids)


def _sentences(max_rows: int = 600) -> list[str]:
    """Premises and hypotheses from the English training sample and a few target languages."""
    sents: list[str] = []
    for name, rows in [("train-en", max_rows), *[(f"validation-{l}", 80) for l in
                       ("fr", "es", "de", "el", "bg", "ru", "tr", "ar", "vi", "th", "zh", "hi", "sw", "ur")]]:
        lines = (SHARED_DATA / "xnli" / f"{name}.tsv").read_text(encoding="utf-8").splitlines()[1 : rows + 1]
        for line in lines:
            fields = line.split("\t")
            sents += [fields[1], fields[2]]
    return sents


def train_spm(out_dir: Path, vocab_size: int = VOCAB_SIZE) -> Path:
    """Train a unigram SentencePiece model with DeBERTa's piece names and ids."""
    import sentencepiece as spm

    out_dir.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_sentences()), model_prefix=str(out_dir / "spm"), vocab_size=vocab_size,
        pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]",
        unk_piece="[UNK]", user_defined_symbols=["[MASK]"], character_coverage=0.9995, model_type="unigram",
        minloglevel=2, num_threads=2)
    return out_dir / "spm.model"


def deberta_tokenizer_dir(out_dir: Path, spm_model: Path) -> Path:
    """A folder that AutoTokenizer loads like microsoft/mdeberta-v3-base (spm.model, no tokenizer.json)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(spm_model, out_dir / "spm.model")
    (out_dir / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "DebertaV2Tokenizer", "do_lower_case": False, "model_max_length": 512}))
    return out_dir


def xlmr_tokenizer_dir(out_dir: Path, spm_model: Path) -> Path:
    """A folder that AutoTokenizer loads like FacebookAI/xlm-roberta-base."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(spm_model, out_dir / "sentencepiece.bpe.model")
    (out_dir / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512}))
    return out_dir


# Tiny configs with the real checkpoints' switches (mdeberta-v3-base / deberta-v2-xlarge / deberta-base).
DEBERTA_V3 = dict(
    model_type="deberta-v2", vocab_size=VOCAB_SIZE, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=64, max_position_embeddings=512, relative_attention=True, position_buckets=256,
    norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"], layer_norm_eps=1e-7,
    max_relative_positions=-1, position_biased_input=False, type_vocab_size=0, hidden_act="gelu", pad_token_id=0)
DEBERTA_V2 = dict(DEBERTA_V3, conv_kernel_size=3, conv_act="gelu", pos_att_type="p2c|c2p")
DEBERTA_V1 = dict(
    model_type="deberta", vocab_size=VOCAB_SIZE, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=64, max_position_embeddings=512, relative_attention=True, max_relative_positions=-1,
    pos_att_type="c2p|p2c", position_biased_input=True, type_vocab_size=0, layer_norm_eps=1e-7,
    hidden_act="gelu", pad_token_id=0)
XLMR = dict(
    model_type="xlm-roberta", vocab_size=VOCAB_SIZE + 5, hidden_size=32, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=64, max_position_embeddings=514, type_vocab_size=1,
    pad_token_id=1, bos_token_id=0, eos_token_id=2)


def tiny_checkpoint(out_dir: Path, config: dict, spm_model: Path, num_labels: int = 3, seed: int = 0,
                    head: str = "classification", safe_serialization: bool = True,
                    labels: list[str] | None = None) -> Path:
    """Save a random tiny model plus its tokenizer with transformers' save_pretrained.

    head: "classification" (a fine-tuned checkpoint), "token" (a tagger), "qa" (a span extractor), "mlm" (a
    pretrained checkpoint with its MLM head and no classifier, as microsoft/deberta-v3-* ship) or "base"
    (encoder only). labels: the config's id2label names in id order (default transformers' LABEL_i).
    """
    import torch
    from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForQuestionAnswering,
                              AutoModelForSequenceClassification, AutoModelForTokenClassification)

    cfg = dict(config)
    model_type = cfg.pop("model_type")
    if labels is not None:
        cfg.update(id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)})
        num_labels = len(labels)
    if head == "qa":
        num_labels = 2   # start and end, as every SQuAD-style checkpoint has
    hf_config = AutoConfig.for_model(model_type, num_labels=num_labels, **cfg)
    torch.manual_seed(seed)
    auto = {"classification": AutoModelForSequenceClassification, "mlm": AutoModelForMaskedLM,
            "base": AutoModel, "token": AutoModelForTokenClassification,
            "qa": AutoModelForQuestionAnswering}[head]
    model = auto.from_config(hf_config)
    model.save_pretrained(out_dir, safe_serialization=safe_serialization)
    if model_type == "xlm-roberta":
        xlmr_tokenizer_dir(out_dir, spm_model)
    else:
        deberta_tokenizer_dir(out_dir, spm_model)
    return out_dir


def featurize(split, tokenizer, params, **kwargs):
    """`xlt.data.featurize` with the split's own task type (the runner passes the type it resolved)."""
    from xlt import data
    from xlt.tasktypes import get_task_type

    return data.featurize(split, tokenizer, params, task_type=get_task_type(split.task_type), **kwargs)


def spec(model, task, seed=1, overrides=None, tasks_dir=None, **fields):
    """A RunSpec with the recipe for (model, task) (`xlt.recipes.effective_hparams`: task defaults, model rules)
    and `overrides`, but none of the identities `xlt.recipes.build_spec` adds (data, task file, checkpoint): for
    tests that make up tasks or models, or check the recipe alone. An unknown task gets xlt's defaults."""
    from xlt.errors import XltError
    from xlt.recipes import effective_hparams
    from xlt.spec import RunSpec
    from xlt.tasks import get_task

    try:
        found = get_task(task, tasks_dir)
    except XltError:
        found = None
    hparams, _ = effective_hparams(model, found, overrides)
    return RunSpec(model=model, task=task, seed=seed, hparams=hparams, **fields)


def as_written(record, predictions=None):
    """A hand-made record and predictions frame completed as the runner writes them: the task block with the
    type's report metrics and metric_info (xlt.runner.task_info), and each example's statistics (`stat_*`,
    per split and language) beside the predictions. The type is the one the task block names."""
    import pandas as pd

    from xlt.results import STAT_PREFIX
    from xlt.tasktypes import FIRST_TYPE, get_task_type

    task = dict(record.get("task") or {})
    ttype = get_task_type(task.get("type") or FIRST_TYPE)
    metrics = task.get("metrics") or list(ttype.default_metrics)

    class _Task:   # what metric_info reads of a TaskSpec
        pass

    spec = _Task()
    spec.metrics, spec.label_names = metrics, task.get("label_names") or []
    task.setdefault("report_metrics", [m for m in ttype.report_metrics if m in metrics] or metrics[:1])
    task.setdefault("metric_info", ttype.metric_info(spec, task))
    record = {**record, "task": task}
    if predictions is None or isinstance(predictions, bytes):
        return record, predictions
    parts = []
    for _, group in predictions.groupby(["split", "lang"], sort=False):
        stats = ttype.statistics(group.reset_index(drop=True)).add_prefix(STAT_PREFIX)
        parts.append(pd.concat([group.reset_index(drop=True), stats], axis=1))
    return record, pd.concat(parts, ignore_index=True)
