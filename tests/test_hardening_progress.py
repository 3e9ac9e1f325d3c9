"""Issue 15.14 (the progress display, on a terminal and in a log) and 15.13 (offline detected once, current hub
download command). No network: the "hub" is an address nothing listens on."""

import io
import socket
import time

import pytest
from rich.console import Console

import xlt.hub as hub
from xlt.cli.progress import PlainProgress, RichProgress, make_progress
from xlt.errors import XltError

LANGS = "en fr es de el bg ru tr ar vi th zh hi sw ur".split()
PARTS = [("test", lang) for lang in LANGS] + [("validation", lang) for lang in LANGS] + [("validation", "xx")]


def recorded_run(steps: int = 120, steps_per_epoch: int = 60, rows: int = 50):
    """A run's events as `xlt.runner.execute` emits them, one per second of (fake) time: 120 optimizer
    steps over two epochs with a dev evaluation each epoch, then 31 split/languages of `rows` rows each."""
    events = [{"event": "stage", "stage": "load model"},
              {"event": "model_loaded", "report": "loaded [/x] (native); classifier newly initialised",
               "impl": "native"},
              {"event": "warning", "message": "split test not evaluated for 1 language(s): no file [/x]"},
              {"event": "train_start", "total_steps": steps, "steps_per_epoch": steps_per_epoch, "step": 0,
               "precision": "fp32", "device": "cpu"}]
    for step in range(1, steps + 1):
        events.append({"event": "step", "step": step, "total_steps": steps, "loss": 1.0 / step, "lr": 2e-5,
                       "tokens_per_s": 1000.0})
        if step % steps_per_epoch == 0:
            events.append({"event": "dev", "step": step, "value": 0.5, "best_step": step, "best_value": 0.5})
    events.append({"event": "eval_plan", "parts": len(PARTS), "rows": len(PARTS) * rows})
    for split, lang in PARTS:
        events.append({"event": "eval_start", "split": split, "lang": lang, "total": rows})
        events += [{"event": "eval_batch", "split": split, "lang": lang, "n": rows // 2}] * 2
        events.append({"event": "eval_end", "split": split, "lang": lang, "metrics": {"accuracy": 0.5, "n": rows}})
    events.append({"event": "done", "status": "completed"})
    return events


def test_a_terminal_shows_two_bars_however_many_languages():
    """Would catch: one bar per split/language (31 stacked bars overflow a 24-row terminal), a training bar
    without epoch or ETA, or `[/x]` in a message crashing the display."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    display = make_progress(console)
    assert isinstance(display, RichProgress)
    for event in recorded_run():
        display(event)
    tasks = display.progress.tasks
    assert [t.description for t in tasks] == ["train", "eval"]
    train, ev = tasks
    assert train.completed == train.total == 120 and "epoch 2/2" in train.fields["info"]
    assert ev.completed == ev.total == 31 * 50 and "31/31 split/languages done" in ev.fields["info"]
    frame = io.StringIO()
    Console(file=frame, width=120, color_system=None).print(display.progress.get_renderable())
    lines = frame.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].lstrip().startswith("train") and "ETA" in lines[0]
    display.close()
    text = out.getvalue()
    assert "loaded [/x] (native)" in text and "no file [/x]" in text and "step 60: dev 0.5000" in text


def test_a_log_gets_plain_lines_every_interval_while_the_run_goes():
    """Would catch: output piped to a log showing nothing until the end (rich bars only draw on a terminal)."""
    out = io.StringIO()
    clock = iter(range(10_000))
    display = PlainProgress(Console(file=out, width=80, color_system=None), interval=30,
                            clock=lambda: float(next(clock)))
    for event in recorded_run():
        display(event)
    lines = out.getvalue().splitlines()
    train = [l for l in lines if l.startswith("train: step")]
    assert 4 <= len(train) <= 6 and train[-1].startswith("train: step 120/120 (100%)")   # every ~30 s + the end
    assert "epoch 1/2" in train[0] and "ETA 0:01:" in train[0] and "epoch 2/2" in train[-1]
    assert lines[0] == "model: loaded [/x] (native); classifier newly initialised"
    assert "step 60: dev 0.5000 (best 0.5000 at step 60)" in lines and "train: 120 steps (2 epoch(s)) on cpu fp32" \
        in lines
    evals = [l for l in lines if l.startswith("eval:")]
    assert evals[0] == "eval: 31 split/languages, 1550 rows" and evals[-1].startswith("eval: done, 31 split/languages")
    assert any("rows  ETA" in l for l in evals[1:-1]) and len(evals) < 10
    assert max(len(l) for l in lines) < 160


def test_make_progress_picks_plain_lines_for_a_pipe(monkeypatch):
    monkeypatch.setenv("XLT_PROGRESS_INTERVAL", "5")
    display = make_progress(Console(file=io.StringIO()))
    assert isinstance(display, PlainProgress) and display.interval == 5


# --- 15.13: offline, detected once ------------------------------------------------------------------------------

@pytest.fixture()
def no_network(monkeypatch, tmp_path):
    """A hub endpoint nothing listens on, the offline variables unset, and the hub clients' module state
    restored afterwards (hub.go_offline changes it for the process)."""
    import datasets.config
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_OFFLINE", "")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "")
    monkeypatch.setattr(hub, "_offline", None)
    monkeypatch.setattr(hub, "_reason", "")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", datasets.config.HF_HUB_OFFLINE)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", datasets.config.HF_DATASETS_OFFLINE)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    monkeypatch.delenv("XLT_DATA_DIR", raising=False)
    probes, sleeps = [], []
    real_connect = socket.create_connection
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: probes.append(a) or real_connect(*a, **k))
    real_sleep = time.sleep
    monkeypatch.setattr(time, "sleep", lambda s: sleeps.append(s) or real_sleep(min(s, 0.01)))
    return probes, sleeps


def test_hub_data_with_no_network_fails_at_once_after_one_probe(no_network):
    """Would catch: a hub data load with no network retrying for ~25 s (the hub client's backoff sleeps)
    before the clear message, and probing the network again for every split."""
    from xlt.tasks import load_split

    probes, sleeps = no_network
    for lang in ("en", "sw"):
        with pytest.raises(XltError, match=rf"127\.0\.0\.1:9 cannot be reached.*--data-dir.*xnli/validation-{lang}"):
            load_split("xnli", "validation", lang)
    assert len(probes) == 1 and not [s for s in sleeps if s >= 1]
    assert hub.is_offline() and "cannot be reached" in hub.offline_reason()


def test_hub_model_with_no_network_gives_the_current_download_command(no_network):
    """Would catch: the hint naming `huggingface-cli download`, which the installed hub client no longer ships."""
    from xlt.models import load_model

    for name, repo in (("mdeberta-v3-base", "microsoft/mdeberta-v3-base"), ("someorg/some-encoder",
                                                                            "someorg/some-encoder")):
        with pytest.raises(XltError) as err:
            load_model(name, "classification")
        assert f"hf download {repo} --local-dir DIR" in str(err.value) and "huggingface-cli" not in str(err.value)
    assert len(no_network[0]) == 1


def test_offline_variables_mean_offline_without_a_probe(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "_offline", None)
    monkeypatch.setattr(hub, "_reason", "")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("probed the network"))
    assert hub.is_offline() and hub.offline_reason() == "HF_HUB_OFFLINE is set"
    assert hub.download_command("facebook/xnli", "dataset", "abc") == \
        "hf download facebook/xnli --repo-type dataset --revision abc --local-dir DIR"
