"""Learning holds under bf16 autocast: test_train.py's learning test, trained with precision="bf16"."""

import pytest
import torch

from tests import factories
from tests.test_train import LEARNER
from xlt import data as xdata
from xlt.models import load_classifier
from xlt.spec import Hyperparams
from xlt.tasks import get_task, load_split
from xlt.train import fit


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


@pytest.mark.slow
def test_learning_is_real_in_bf16(tmp_path_factory, spm_model, shared_data, capsys):
    """The fp32 learning test's model, data, schedule and seed, trained under bf16 autocast: English XNLI
    validation accuracy (2,490 balanced pairs) must clear the same 0.38 (five standard deviations above
    chance). Catches what breaks learning only in bf16 but still runs: the native kernels' fp32 attention
    and bf16 feed-forward casts dropping or mis-scaling a gradient, a loss computed in bf16, weights
    silently stored in bf16. Seen on the shared 2-core box: see docs/benchmarks.md (fp32 beside it)."""
    from xlt.evaluate import dev_score

    checkpoint = factories.tiny_checkpoint(tmp_path_factory.mktemp("learner"), LEARNER, spm_model, seed=0)
    clf = load_classifier(str(checkpoint), num_labels=3)
    assert clf.impl == "native"
    task = get_task("xnli")
    train = xdata.featurize(load_split(task, "train", "en", shared_data), clf.tokenizer, 32)
    dev = xdata.featurize(load_split(task, "validation", "en", shared_data), clf.tokenizer, 32)
    hp = Hyperparams(lr=1e-3, epochs=3, batch_size=64, max_seq_len=32, warmup_steps=30, eval_every=100)
    result = fit(clf.model, lambda epoch: xdata.batches(train, 64, shuffle=True, seed=epoch),
                 xdata.num_batches(train, 64), hp, seed=1, precision="bf16",
                 dev_eval=lambda model: dev_score(model, dev, "accuracy", batch_size=256, precision="bf16"))
    accuracy = dev_score(clf.model, dev, "accuracy", batch_size=256, precision="bf16")  # as a bf16 run scores
    with capsys.disabled():
        print(f"\nbf16 learning test: {result.steps} steps in {result.train_s:.1f}s ({result.tokens_per_s:.0f} "
              f"tok/s), English validation accuracy {accuracy:.4f} (selected at step {result.best_step}; "
              f"history {[round(h['value'], 4) for h in result.history]})")
    assert all(p.dtype == torch.float32 for p in clf.model.parameters())  # autocast, not bf16 weights
    assert accuracy == result.best_value
    assert accuracy >= 0.38
