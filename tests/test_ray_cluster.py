"""A sweep across a three-node Ray cluster on this machine, joined the way `xlt sweep --address` joins one.

`ray.cluster_utils.Cluster` starts a head node and two worker nodes as separate Ray nodes (each its own raylet,
object store and worker processes) with one CPU and a custom resource each, so three jobs run at once only by
using all three. Each node is started with its own TMPDIR, so its workers' temporary files are not the
driver's, and with an XLT_CACHE_DIR of its own that the driver's must override (a node of a real cluster does
not inherit the driver's environment). The driver is this test process; it is not connected to Ray until the
executor joins the cluster by its address.

- The real runner on a tiny checkpoint, through the CLI: jobs land on more than one node, each record says
  which, and features are cached where the driver said.
- Sleeping jobs through the injectable job path: a worker node is killed (SIGKILL, no graceful shutdown) while
  it runs a job; that job runs again elsewhere, records finished before stay, and the summary says what
  happened. Each job writes a scratch file into its own node's temp dir and returns its record; the driver
  writes every record, the workers are never told where.
"""

from __future__ import annotations

import io
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from tests.hygiene import isolated_home  # noqa: F401  (the fixture, used through pytestmark)
from tests import factories
from xlt.results import load_predictions, load_records, new_record, read_record
from xlt.schedule import RayExecutor, run_sweep
from xlt.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]
HERE = "tests.test_ray_cluster"
NODE_NAMES = ("head", "w1", "w2")

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("isolated_home")]


def scratch_job(spec: RunSpec, **_: object):
    """Writes a scratch file into its node's temp dir, sleeps (seeds 1-3 briefly, the rest long enough to be
    running when a node is killed) and returns a record saying which temp dir it saw."""
    scratch = Path(tempfile.mkdtemp(prefix=f"xlt-job-seed{spec.seed}-"))
    (scratch / "work.txt").write_text(spec.run_id)
    time.sleep(0.5 if spec.seed <= 3 else 3.0)
    record = new_record(spec, status="completed", metrics={"validation": {"en": {"accuracy": 0.5, "n": 2}}},
                        env={"tmpdir": tempfile.gettempdir(), "scratch": str(scratch)})
    preds = pd.DataFrame({"split": ["validation"] * 2, "lang": ["en", "en"], "idx": [0, 1], "label": [1, 0],
                          "pred": [1, 1]})
    return record, preds


@dataclass
class LocalCluster:
    cluster: Any                     # ray.cluster_utils.Cluster
    nodes: dict[str, Any]            # "head" | "w1" | "w2" -> ray's Node
    tmpdirs: dict[str, Path]         # each node's TMPDIR
    node_cache: Path                 # the XLT_CACHE_DIR in the nodes' own environment
    names: dict[str, str] = field(default_factory=dict)   # node id -> name

    @property
    def address(self) -> str:
        return self.cluster.address


@pytest.fixture(scope="module")
def cluster(isolated_home, tmp_path_factory):
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()   # the driver must join through the executor, not an instance left by another module
    root = tmp_path_factory.mktemp("cluster")
    tmpdirs = {name: root / f"tmp-{name}" for name in NODE_NAMES}
    node_cache = root / "node-cache"
    nodes: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp:   # the environment each node's processes start with
        mp.setenv("PYTHONPATH", str(ROOT))
        mp.setenv("XLT_CACHE_DIR", str(node_cache))
        mp.setenv("RAY_TMPDIR", "/tmp")   # Ray's own session files stay where Ray keeps them (socket paths)
        mp.setenv("RAY_gcs_server_port_wait_time_s", "120")   # a busy 2-core machine can take over Ray's 30 s
        mp.delenv("RAY_ADDRESS", raising=False)
        for name in NODE_NAMES:
            tmpdirs[name].mkdir()
            mp.setenv("TMPDIR", str(tmpdirs[name]))
            args = dict(num_cpus=1, resources={f"node-{name}": 1})
            if name == "head":
                # Quick health checks, so a killed node is declared dead in about a second.
                local = Cluster(initialize_head=True, head_node_args=dict(
                    args, include_dashboard=False, _system_config={
                        "health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                        "health_check_failure_threshold": 2}))
                nodes[name] = local.head_node
            else:
                nodes[name] = local.add_node(**args)
    local.wait_for_nodes()
    info = LocalCluster(local, nodes, tmpdirs, node_cache)
    info.names = {node.node_id: name for name, node in nodes.items()}
    yield info
    ray.shutdown()
    local.shutdown()


def _tiny_run_args(model: Path, shared_data: Path, results: Path) -> list[str]:
    return ["sweep", "--models", str(model), "--tasks", "xnli", "--seeds", "1-2", "--data-dir", str(shared_data),
            "--results-dir", str(results), "--max-train-samples", "16", "--max-eval-samples", "8",
            "--set", "epochs=1", "--set", "batch_size=8", "--set", "max_seq_len=32", "--set", "warmup_steps=0",
            "--set", "eval_batch_size=16", "--cpus-per-job", "1"]


def test_a_real_sweep_spreads_over_the_nodes_of_an_existing_cluster(cluster, tmp_path, shared_data,
                                                                    tiny_deberta_v3, isolated_home):
    """`xlt sweep --address` with the real runner: two jobs at once need two of the one-CPU nodes. Catches: jobs
    piling onto one node, a record that does not say where it ran, and a worker caching features by its node's
    settings instead of the driver's."""
    from xlt.cli import app

    results = tmp_path / "results"
    out = CliRunner().invoke(app, [*_tiny_run_args(tiny_deberta_v3, shared_data, results), "--address",
                                   cluster.address])
    assert out.exit_code == 0, out.output
    assert "2 completed, 0 failed" in " ".join(out.output.split())
    loaded = load_records(results)
    assert len(loaded.records) == 2 and not loaded.problems
    assert all(r["status"] == "completed" for r in loaded.records)
    assert all(load_predictions(p) is not None for p in loaded.paths)
    ran_on = [cluster.names.get(r["env"].get("node_id")) for r in loaded.records]
    assert None not in ran_on, [r["env"] for r in loaded.records]   # every record names a node of the cluster
    assert len(set(ran_on)) > 1, ran_on
    assert all(r["env"]["node_ip"] for r in loaded.records)
    assert list(isolated_home.cache_dir.rglob("*.npz")), "features were not cached in the driver's XLT_CACHE_DIR"
    assert not cluster.node_cache.exists(), "a worker used its node's XLT_CACHE_DIR instead of the driver's"


def test_a_worker_node_killed_mid_sweep_its_job_runs_elsewhere_and_no_record_is_lost(cluster, tmp_path,
                                                                                      monkeypatch):
    """Catches: a lost node ending the sweep or failing its job without a retry, a record finished on that node
    going missing, records depending on a filesystem shared with the workers, and a summary that hides the loss."""
    from xlt.cli import sweep as sweep_cli

    victim = cluster.nodes["w1"]
    results = tmp_path / "results"
    specs = [factories.spec("sleepy", "xnli", seed=s) for s in range(1, 7)]   # 3 short, then 3 long
    finished_on_victim: list[str] = []
    killed_while_running: list[str] = []

    def on_event(event) -> None:
        outcome = event.outcome
        on_victim = (outcome.worker or {}).get("node_id") == victim.node_id
        if event.kind == "completed" and on_victim:
            finished_on_victim.append(outcome.spec.run_id)
        if event.kind == "running" and on_victim and finished_on_victim and not killed_while_running:
            killed_while_running.append(outcome.spec.run_id)
            cluster.cluster.remove_node(victim, allow_graceful=False)   # SIGKILL to its raylet and workers

    executor = RayExecutor(address=cluster.address, cpus_per_job=1, job=f"{HERE}:scratch_job", retries=2)
    result = run_sweep(specs, results, executor=executor, on_event=on_event)

    assert killed_while_running, "the victim node never ran a second job; nothing was killed"
    assert result.ok and result.count("completed") == 6, [(o.state, o.error) for o in result.outcomes]
    by_id = {o.spec.run_id: o for o in result.outcomes}

    # The job that was running on the killed node ran again on another node.
    lost = by_id[killed_while_running[0]]
    assert [(x["attempt"], x["error"], x["node_id"]) for x in lost.lost] == [(1, "NodeDiedError", victim.node_id)]
    assert lost.attempts == 2 and lost.worker["node_id"] != victim.node_id
    assert [o.spec.run_id for o in result.lost] == [lost.spec.run_id]

    # What finished on that node before it died is still there, written once, as it was.
    for run_id in finished_on_victim:
        assert by_id[run_id].attempts == 1
        record = read_record(by_id[run_id].record_path)
        assert record["status"] == "completed" and record["env"]["node_id"] == victim.node_id

    # No shared filesystem needed: each job saw its own node's temp dir (never the driver's) and wrote its
    # scratch file there; the records exist only where the driver wrote them.
    driver_tmp = Path(tempfile.gettempdir()).resolve()
    names = set()
    for outcome in result.outcomes:
        record = read_record(outcome.record_path)
        name = cluster.names[record["env"]["node_id"]]
        names.add(name)
        assert Path(record["env"]["tmpdir"]) == cluster.tmpdirs[name] != driver_tmp
        assert (Path(record["env"]["scratch"]) / "work.txt").read_text() == outcome.spec.run_id
        assert Path(record["env"]["scratch"]).parent == cluster.tmpdirs[name]
        assert load_predictions(outcome.record_path)["pred"].tolist() == [1, 1]
    assert len(names) > 1
    assert not [p for tmp in cluster.tmpdirs.values() for p in tmp.rglob("*.json")]

    # The summary says which node was lost, which job, and how it ended.
    buffer = io.StringIO()
    monkeypatch.setattr(sweep_cli, "console", Console(file=buffer, width=200, color_system=None))
    sweep_cli._summary(result, results)
    summary = " ".join(buffer.getvalue().split())
    assert "6 completed, 0 failed" in summary
    assert f"lost 1 running job(s) on node {victim.node_id[:8]} ({victim.node_ip_address}): node died" in summary
    assert (f"{lost.spec.label()}: attempt 1 lost; re-run, completed on attempt 2 on node "
            f"{lost.worker['node_id'][:8]}") in summary
