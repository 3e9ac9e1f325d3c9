"""Learning holds under bf16 autocast: test_train.py's learning test, trained with precision="bf16"."""

import pytest

from tests.test_train import learn_xnli_from_scratch

pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


@pytest.mark.slow
def test_learning_is_real_in_bf16(tmp_path_factory, spm_model, shared_data, capsys):
    """The fp32 learning test's model, data, schedule and seed, trained under bf16 autocast: English XNLI
    validation accuracy (2,490 balanced pairs) must clear the same 0.38 (five standard deviations above
    chance). Catches what breaks learning only in bf16 but still runs: the native kernels' fp32 attention
    and bf16 feed-forward casts dropping or mis-scaling a gradient, a loss computed in bf16, weights
    silently stored in bf16. Seen on the shared 2-core box: see docs/benchmarks.md (fp32 beside it)."""
    learn_xnli_from_scratch(tmp_path_factory, spm_model, shared_data, capsys, "bf16")
