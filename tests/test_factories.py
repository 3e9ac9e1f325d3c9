from transformers import AutoModelForSequenceClassification, AutoTokenizer


def test_tiny_checkpoints_load_like_hub_downloads(tiny_deberta_v3, tiny_xlmr):
    for path in (tiny_deberta_v3, tiny_xlmr):
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path)
        enc = tok("The cat sat on the mat.", "Le chat est assis.", return_tensors="pt")
        # A real tokenizer: most pieces are known, and every id fits the model's vocabulary.
        assert (enc["input_ids"] == tok.unk_token_id).float().mean() < 0.2
        assert int(enc["input_ids"].max()) < model.config.vocab_size
        assert model(**enc).logits.shape == (1, 3)
