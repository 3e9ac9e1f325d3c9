from pathlib import Path

import pytest

from tests import factories, real_encoder as real_encoder_tool

# Under `pytest -n 2 --dist loadgroup` (README's command) each group runs in one worker, one test after another:
# the Ray modules, because each starts its own Ray instances and they have always run one at a time; the real
# encoder's tests, because they run on one torch thread each for minutes, so one worker takes them while the
# other takes everything else. Without xdist the marks do nothing.
XDIST_GROUPS = {
    "ray": ("test_ray_cluster.py", "test_schedule.py", "test_sweep_cli.py"),
    "real-encoder": ("test_real_encoder_learning.py", "test_retrieval_real.py", "test_real_encoder.py"),
}


def pytest_collection_modifyitems(config, items):
    group_of = {name: group for group, names in XDIST_GROUPS.items() for name in names}
    for item in items:
        group = group_of.get(item.path.name)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


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


@pytest.fixture(scope="session")
def real_encoder() -> Path:
    """The real pretrained multilingual encoder (multilingual-e5-small): a folder holding `me5-small`
    (XLMRobertaModel) and `me5-small-nli` (3-label classifier config). Found from XLT_REAL_ENCODER or the
    per-machine cache, else fetched once with ../shared/tools/real-encoder (tests/real_encoder.py). When it cannot
    be had, the tests that need it fail in CI (CI or XLT_REQUIRE_REAL_ENCODER=1 set) and skip elsewhere, with
    the reason either way."""
    folder, why = real_encoder_tool.fetch()
    if folder is None:
        reason = f"real encoder unavailable: {why}"
        if real_encoder_tool.required():
            pytest.fail(reason + " (required: CI or XLT_REQUIRE_REAL_ENCODER=1 is set)", pytrace=False)
        pytest.skip(reason)
    return folder
