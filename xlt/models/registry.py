"""Short model names -> hub id, family, implementation and the real size config.

Each registry entry carries its checkpoint's `config.json` (the architecture keys, in transformers' format),
so `xlt bench model` and `xlt models list` need no download. Values were checked against the published
config.json files (microsoft/*, FacebookAI/*, tgsc/*); where one could not be confirmed the entry says so.

`resolve_model(name)` accepts a registry name, any other hub id (architecture read from its config.json,
fetched through huggingface_hub) or a local directory holding a config.json.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from xlt.errors import XltError

FAMILIES = ("deberta-v1", "deberta-v2", "deberta-v3", "xlm-roberta")


@dataclass(frozen=True)
class ModelInfo:
    """What xlt knows about a model before loading any weights."""

    name: str  # the short name, or the string the user gave (hub id / local path)
    hub_id: str  # hub id, or the absolute path of a local directory
    family: str  # "deberta-v1" | "deberta-v2" | "deberta-v3" | "xlm-roberta" | another model_type
    impl: str  # default implementation: "native" (DeBERTa) or "hf" (transformers Auto classes)
    config: dict = field(repr=False)  # transformers config.json keys (size + architecture switches)

    @property
    def is_local(self) -> bool:
        return Path(self.hub_id).is_dir()


# --- size configs, transformers' config.json format -------------------------------------------------------

_V3 = dict(  # microsoft/deberta-v3-base config.json (v3 = v2 architecture without the nGiE convolution)
    model_type="deberta-v2", attention_probs_dropout_prob=0.1, hidden_act="gelu", hidden_dropout_prob=0.1,
    hidden_size=768, initializer_range=0.02, intermediate_size=3072, max_position_embeddings=512,
    relative_attention=True, position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True,
    pos_att_type="p2c|c2p", layer_norm_eps=1e-7, max_relative_positions=-1, position_biased_input=False,
    num_attention_heads=12, num_hidden_layers=12, type_vocab_size=0, vocab_size=128100, pad_token_id=0)
_V2 = dict(  # microsoft/deberta-v2-xlarge config.json
    _V3, hidden_size=1536, intermediate_size=6144, num_attention_heads=24, attention_head_size=64,
    num_hidden_layers=24, conv_kernel_size=3, conv_act="gelu")
# microsoft/deberta-{base,large} and deberta-xlarge-mnli config.json. The v1 architecture can add absolute
# positions to the input, but every released v1 checkpoint sets position_biased_input=false.
_V1 = dict(
    model_type="deberta", attention_probs_dropout_prob=0.1, hidden_act="gelu", hidden_dropout_prob=0.1,
    hidden_size=768, initializer_range=0.02, intermediate_size=3072, max_position_embeddings=512,
    relative_attention=True, pos_att_type="c2p|p2c", layer_norm_eps=1e-7, max_relative_positions=-1,
    position_biased_input=False, num_attention_heads=12, num_hidden_layers=12, type_vocab_size=0,
    vocab_size=50265, pad_token_id=0)
_XLMR = dict(  # FacebookAI/xlm-roberta-base config.json
    model_type="xlm-roberta", attention_probs_dropout_prob=0.1, hidden_act="gelu", hidden_dropout_prob=0.1,
    hidden_size=768, initializer_range=0.02, intermediate_size=3072, layer_norm_eps=1e-5,
    max_position_embeddings=514, num_attention_heads=12, num_hidden_layers=12, type_vocab_size=1,
    vocab_size=250002, pad_token_id=1, bos_token_id=0, eos_token_id=2, position_embedding_type="absolute")

_LARGE = dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24)

# name -> (hub id, family, config)
_ENTRIES: dict[str, tuple[str, str, dict]] = {
    "mdeberta-v3-base": ("microsoft/mdeberta-v3-base", "deberta-v3", dict(_V3, vocab_size=251000)),
    "deberta-v3-xsmall": ("microsoft/deberta-v3-xsmall", "deberta-v3", dict(
        _V3, hidden_size=384, intermediate_size=1536, num_attention_heads=6)),
    "deberta-v3-small": ("microsoft/deberta-v3-small", "deberta-v3", dict(_V3, num_hidden_layers=6)),
    "deberta-v3-base": ("microsoft/deberta-v3-base", "deberta-v3", dict(_V3)),
    "deberta-v3-large": ("microsoft/deberta-v3-large", "deberta-v3", dict(_V3, **_LARGE)),
    "deberta-base": ("microsoft/deberta-base", "deberta-v1", dict(_V1)),
    "deberta-large": ("microsoft/deberta-large", "deberta-v1", dict(_V1, **_LARGE)),
    "deberta-xlarge": ("microsoft/deberta-xlarge", "deberta-v1", dict(_V1, **dict(_LARGE, num_hidden_layers=48))),
    "deberta-v2-xlarge": ("microsoft/deberta-v2-xlarge", "deberta-v2", dict(_V2)),
    "deberta-v2-xxlarge": ("microsoft/deberta-v2-xxlarge", "deberta-v2", dict(_V2, num_hidden_layers=48)),
    "xlm-roberta-base": ("FacebookAI/xlm-roberta-base", "xlm-roberta", dict(_XLMR)),
    "xlm-roberta-large": ("FacebookAI/xlm-roberta-large", "xlm-roberta", dict(_XLMR, **_LARGE)),
    # tgsc/debertina-base config.json (initial upload): deberta-v3-base shape, 32001-piece Portuguese vocab.
    "debertina-base": ("tgsc/debertina-base", "deberta-v3", dict(_V3, vocab_size=32001)),
    # tgsc/debertina-xsmall: config.json NOT confirmed. The model card gives a 128k vocabulary and
    # 21.5M backbone + 49.2M embedding parameters (= deberta-v3-xsmall's shape); vocab_size 128000 is taken
    # from tgsc/debertina-large's config.json (same tokenizer family) and is an inference, not a read value.
    "debertina-xsmall": ("tgsc/debertina-xsmall", "deberta-v3", dict(
        _V3, hidden_size=384, intermediate_size=1536, num_attention_heads=6, attention_head_size=64,
        vocab_size=128000)),
}


def _impl_for(family: str) -> str:
    return "native" if family.startswith("deberta") else "hf"


REGISTRY: dict[str, ModelInfo] = {
    name: ModelInfo(name=name, hub_id=hub, family=fam, impl=_impl_for(fam), config=cfg)
    for name, (hub, fam, cfg) in _ENTRIES.items()
}


def family_of(config: dict) -> str:
    """The family a config.json belongs to: DeBERTa v1/v2/v3 told apart by model_type and nGiE conv."""
    model_type = config.get("model_type")
    if model_type is None:
        raise XltError("config.json has no 'model_type'; add it (e.g. \"deberta-v2\" or \"xlm-roberta\") "
                       "so xlt knows which architecture to build.")
    if model_type == "deberta":
        return "deberta-v1"
    if model_type == "deberta-v2":
        return "deberta-v2" if config.get("conv_kernel_size", 0) else "deberta-v3"
    return model_type


def param_count(config: dict, num_labels: int = 0) -> int:
    """Parameters of the encoder (+ pooler and classifier when num_labels > 0), from the size config alone.

    Counts what transformers builds for these model types: embeddings (+ LayerNorm), per layer the q/k/v/o
    projections, FFN and two LayerNorms, DeBERTa's relative-position table (+ its LayerNorm), v1's extra
    position projections and q/v biases, v2's nGiE convolution, and the pooler. Checked in the tests against
    transformers' own models on tiny configs.
    """
    h, n, i = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    heads = config["num_attention_heads"]
    head_dim = config.get("attention_head_size") or h // heads
    all_head = heads * head_dim
    family = family_of(config)
    vocab = config["vocab_size"]
    emb_size = config.get("embedding_size") or h
    ln = 2 * h

    emb = vocab * emb_size + ln
    if emb_size != h:
        emb += emb_size * h  # embed_proj (no bias)
    type_vocab = config.get("type_vocab_size", 0)
    if type_vocab:
        emb += type_vocab * emb_size
    position_biased = config.get("position_biased_input", True) if family.startswith("deberta") else True
    if position_biased:
        emb += config["max_position_embeddings"] * emb_size

    attn = 3 * (h * all_head + all_head) + all_head * h + h + ln
    ffn = h * i + i + i * h + h + ln
    per_layer = attn + ffn
    extra = 0
    if family.startswith("deberta"):
        rel = bool(config.get("relative_attention", False))
        pos_types = config.get("pos_att_type") or []
        if isinstance(pos_types, str):
            pos_types = [p for p in pos_types.lower().split("|") if p]
        max_rel = config.get("max_relative_positions", -1)
        if max_rel is None or max_rel < 1:
            max_rel = config["max_position_embeddings"]
        if family == "deberta-v1":
            per_layer += 2 * all_head  # q_bias, v_bias (in_proj has no bias: 3*h*all_head + 3*all_head above)
            per_layer -= 3 * all_head
            if rel:
                extra += 2 * max_rel * h  # encoder.rel_embeddings
                if "c2p" in pos_types or "p2p" in pos_types:
                    per_layer += h * all_head  # pos_proj (no bias)
                if "p2c" in pos_types or "p2p" in pos_types:
                    per_layer += h * all_head + all_head  # pos_q_proj
        else:
            if rel:
                buckets = config.get("position_buckets", -1)
                pos_ebd = buckets if buckets and buckets > 0 else max_rel
                extra += 2 * pos_ebd * h
                if "layer_norm" in str(config.get("norm_rel_ebd", "none")).lower():
                    extra += ln
                if not config.get("share_att_key", False):
                    if "c2p" in pos_types:
                        per_layer += h * all_head + all_head  # pos_key_proj
                    if "p2c" in pos_types:
                        per_layer += h * all_head + all_head  # pos_query_proj
            k = config.get("conv_kernel_size", 0)
            if k:
                extra += h * h * k + h + ln  # conv (groups=1 by default) + LayerNorm
    total = emb + n * per_layer + extra
    if num_labels:
        pooler = config.get("pooler_hidden_size") or h
        total += h * pooler + pooler + pooler * num_labels + num_labels
    return total


def known_names() -> list[str]:
    return list(REGISTRY)


def _looks_like_short_name(name: str) -> bool:
    return "/" not in name and "\\" not in name and not name.startswith(".") and not name.startswith("~")


def read_config(path: Path) -> dict:
    """A checkpoint folder's config.json: the one reader of it in xlt (an XltError naming the fix if bad)."""
    cfg_path = Path(path) / "config.json"
    if not cfg_path.is_file():
        raise XltError(f"{path} is a directory but has no config.json; point --model at a checkpoint directory "
                       "saved with save_pretrained (config.json + weights + tokenizer).")
    try:
        return json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise XltError(f"{cfg_path} is not valid JSON ({exc}); fix or re-save the checkpoint.") from None


def refuse_checkpoint_code(config: dict, source: str) -> None:
    """A config.json that needs Python code shipped in the checkpoint (`auto_map` naming its own classes for a
    model_type transformers does not know) is refused: xlt never runs code from a checkpoint, and transformers
    would otherwise ask on stdin whether to run it."""
    auto_map = config.get("auto_map")
    if not auto_map:
        return
    from transformers import CONFIG_MAPPING

    model_type = config.get("model_type")
    if model_type in CONFIG_MAPPING:   # transformers ships the classes; trust_remote_code=False uses them
        return
    entries = auto_map.values() if isinstance(auto_map, dict) else [auto_map]
    refs = sorted({str(e if isinstance(e, str) else next((x for x in e if x), e)) for e in entries})
    raise XltError(f"checkpoint {source} needs Python code it ships itself (auto_map in config.json: "
                   f"{', '.join(refs)}) to build model_type {model_type!r}, which transformers does not ship; "
                   "xlt never runs code from a checkpoint. Use a checkpoint of an architecture transformers ships "
                   "(DeBERTa, XLM-R, BERT, ...)")


def _fetch_hub_config(hub_id: str) -> dict:
    from xlt import hub

    offline = hub.is_offline()   # probed once: with no network the hub client fails at once, not after retries
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(hub_id, "config.json")
    except Exception as exc:  # offline, gated, missing repo: all a user's problem to fix
        if offline:
            raise XltError(f"cannot fetch '{hub_id}': {hub.offline_reason()} and it is not in the local hub cache. "
                           f"Download it where there is network ({hub.download_command(hub_id)}) and pass that "
                           "folder: --model DIR") from None
        raise XltError(f"could not fetch config.json of '{hub_id}' from the Hugging Face hub "
                       f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); check the id, "
                       f"your network/HF_TOKEN, or pass a local checkpoint directory instead.") from None
    return json.loads(Path(path).read_text(encoding="utf-8"))


def resolve_model(name: str) -> ModelInfo:
    """A registry name, a local checkpoint directory or a hub id -> ModelInfo.

    Order: registry name, then an existing local directory, then (if it has an owner/ prefix) a hub id whose
    config.json is fetched. A bare unknown name gets an XltError listing the closest registry names.
    """
    name = str(name)
    if name in REGISTRY:
        return REGISTRY[name]
    # A registry model's hub id maps back to its entry (same config, no download).
    for info in REGISTRY.values():
        if info.hub_id == name:
            return info
    path = Path(name).expanduser()
    if path.is_dir():
        cfg = read_config(path)
        refuse_checkpoint_code(cfg, str(path))
        family = family_of(cfg)
        return ModelInfo(name=name, hub_id=str(path.resolve()), family=family, impl=_impl_for(family), config=cfg)
    if _looks_like_short_name(name):
        close = difflib.get_close_matches(name, known_names(), n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise XltError(f"unknown model '{name}': {hint}Run `xlt models list` for the registry, or pass a hub id "
                       f"(org/name) or a local checkpoint directory.")
    if path.exists() or name.startswith((".", "/", "~")):
        raise XltError(f"'{name}' is not a checkpoint directory; pass a directory with config.json, "
                       "a hub id (org/name) or a registry name.")
    cfg = _fetch_hub_config(name)
    refuse_checkpoint_code(cfg, name)
    family = family_of(cfg)
    return ModelInfo(name=name, hub_id=name, family=family, impl=_impl_for(family), config=cfg)


__all__ = ["ModelInfo", "REGISTRY", "resolve_model", "read_config", "refuse_checkpoint_code", "family_of", "param_count", "known_names", "FAMILIES"]
