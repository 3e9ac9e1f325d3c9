"""`xlt models list` and `xlt models verify` through Typer's CliRunner on tiny local checkpoints."""

import pytest
import torch
from typer.testing import CliRunner

from tests import factories
from xlt.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def test_models_list_shows_every_registry_model():
    from xlt.models.registry import REGISTRY

    result = runner.invoke(app, ["models", "list"], env=WIDE)
    assert result.exit_code == 0, result.output
    for info in REGISTRY.values():
        assert info.name in result.output and info.hub_id in result.output
    assert "278M" in result.output  # mdeberta-v3-base encoder
    assert "768 x 12" in result.output


@pytest.mark.parametrize("config", ["DEBERTA_V3", "DEBERTA_V2", "DEBERTA_V1"])
def test_verify_passes_on_tiny_checkpoints(config, spm_model, tmp_path):
    path = factories.tiny_checkpoint(tmp_path / config, getattr(factories, config), spm_model)
    result = runner.invoke(app, ["models", "verify", str(path), "--seq-len", "40", "--batch-size", "3"],
                           env=WIDE)
    assert result.exit_code == 0, result.output
    assert "encoder max abs diff" in result.output and "logits max abs diff" in result.output
    assert "lengths [40," in result.output  # mixed lengths: padding is exercised


def test_verify_pretrained_layout_copies_the_head(spm_model, tmp_path):
    path = factories.tiny_checkpoint(tmp_path / "mlm", factories.DEBERTA_V3, spm_model, head="mlm")
    result = runner.invoke(app, ["models", "verify", str(path), "--seq-len", "24", "--num-labels", "2"],
                           env=WIDE)
    assert result.exit_code == 0, result.output
    assert "copied the native head" in result.output and "classifier.weight" in result.output


def test_verify_fails_when_the_native_loader_maps_a_tensor_wrongly(tiny_deberta_v3, monkeypatch):
    """Simulate a loader bug (one attention projection slightly off): verify must notice and exit 1."""
    import xlt.models.verify as verify_mod

    real = verify_mod._load_native

    def buggy_loader(source, num_labels):
        model, report = real(source, num_labels)
        with torch.no_grad():
            weight = model.deberta.encoder.layer[1].attention.self.value_proj.weight
            # random, not constant: a constant shift cancels against the zero-mean LayerNorm output
            weight.add_(1e-2 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
        return model, report

    monkeypatch.setattr(verify_mod, "_load_native", buggy_loader)
    result = runner.invoke(app, ["models", "verify", str(tiny_deberta_v3), "--seq-len", "24"], env=WIDE)
    assert result.exit_code == 1, result.output
    assert "NO" in result.output


def test_verify_rejects_a_non_deberta_model(tiny_xlmr):
    result = runner.invoke(app, ["models", "verify", str(tiny_xlmr)], env=WIDE)
    assert result.exit_code != 0
    assert "only DeBERTa" in str(result.exception)
