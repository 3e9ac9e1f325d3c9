from pathlib import Path

import pytest

from tests import factories


@pytest.fixture(scope="session", autouse=True)
def feature_cache_in_a_temp_dir(tmp_path_factory):
    """Feature caches of the whole session in a temp dir: a test that does not set its own XLT_CACHE_DIR (or a
    Ray worker it starts) would otherwise write to ~/.cache/xlt/features. Set before any test runs, so Ray
    workers inherit it; a test that sets its own (monkeypatch.setenv) still wins for that test."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XLT_CACHE_DIR", str(tmp_path_factory.mktemp("xlt-cache")))
        yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not factories.SHARED_DATA.is_dir():
        pytest.fail(f"real data not found at {factories.SHARED_DATA}; ../shared must sit beside the project")
    return factories.SHARED_DATA


@pytest.fixture(scope="session")
def spm_model(tmp_path_factory, shared_data) -> Path:
    return factories.train_spm(tmp_path_factory.mktemp("spm"))


@pytest.fixture(scope="session")
def tiny_deberta_v3(tmp_path_factory, spm_model) -> Path:
    """A tiny mDeBERTa-v3-shaped classification checkpoint (3 labels) with its tokenizer."""
    return factories.tiny_checkpoint(tmp_path_factory.mktemp("tiny-deberta-v3"), factories.DEBERTA_V3, spm_model)


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory, spm_model) -> Path:
    """A tiny XLM-R classification checkpoint (3 labels) with its tokenizer."""
    return factories.tiny_checkpoint(tmp_path_factory.mktemp("tiny-xlmr"), factories.XLMR, spm_model)


@pytest.fixture()
def one_torch_thread(tmp_path, monkeypatch):
    """For tests that train or evaluate models: one torch thread (bitwise-repeatable CPU runs; on a shared,
    oversubscribed box OpenMP's spinning threads are 10x slower), the feature cache in the test's temp dir,
    the hub offline, and none of the user's XLT_* locations (data, tasks, results) leaking in."""
    import torch

    monkeypatch.setenv("XLT_CACHE_DIR", str(tmp_path / "features"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("XLT_DATA_DIR", "XLT_TASKS_PATH", "XLT_RESULTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
