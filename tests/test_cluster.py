"""The recipe's jobs on a cluster: sbatch parameters from the preset, the full-scale job plan, the
refusal to train Llama 3.1 in a kernel, re-attaching to and resubmitting SLURM jobs (a fake
scheduler), and a several-task job on this machine training what one process trains.
The real SLURM run is `make slurm-check` (scripts/slurm_check.py)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, make_tiny_model
from hermes3.core.errors import Hermes3Error
from hermes3.recipe import slurm
from hermes3.recipe.cluster import ExecutorConfig, JobFailed, JobsPending, Resources, cores, job_key, job_threads
from hermes3.recipe.executor import call, run_all


@pytest.fixture
def on_slurm(monkeypatch, tmp_path):
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("backend: slurm\npartition: h100\naccount: nous\nqos: high\npoll_seconds: 0.01\n"
                       f"folder: {tmp_path / 'jobs'}\n")
    monkeypatch.setenv("HERMES3_CLUSTER", str(cluster))
    monkeypatch.delenv("HERMES3_EXECUTOR", raising=False)
    return tmp_path / "jobs"


def test_sbatch_parameters_come_from_the_preset_and_the_cluster_file(on_slurm, tmp_path):
    """Table 3's layout: 8B SFT on 6 nodes x 8 GPUs, DPO on one node of 8, a 24-hour limit, the
    cluster file's partition, account and QoS, and afterok dependencies."""
    from hermes3.core.config import load_config
    from hermes3.recipe.cluster import executor_config
    from hermes3.recipe.stages import Recipe
    from hermes3.train.dpo import DPOConfig

    r = Recipe("full", root=tmp_path / "full")
    sft = r._sft_config("configs/sft/llama3.1-8b.yaml", ())
    dpo = load_config(DPOConfig, ROOT / "configs/dpo/llama3.1-8b.yaml")
    cfg = executor_config()
    assert slurm.sbatch_parameters(r._train_resources(sft), cfg, "main SFT run", ["7"]) == {
        "name": "main_SFT_run", "nodes": 6, "tasks_per_node": 8, "gpus_per_node": 8, "cpus_per_task": 8,
        "timeout_min": 1440, "slurm_signal_delay_s": 120, "slurm_partition": "h100", "slurm_account": "nous",
        "slurm_qos": "high", "slurm_additional_parameters": {"dependency": "afterok:7"}}
    p = slurm.sbatch_parameters(r._train_resources(dpo), cfg, "DPO", [])
    assert (p["nodes"], p["tasks_per_node"], p["gpus_per_node"]) == (1, 8, 8) and "slurm_additional_parameters" not in p
    assert slurm.sbatch_parameters(r._job_resources(), cfg, "FP8", [])["timeout_min"] == 240


def test_full_dry_run_prints_table3_layout(tmp_path):
    env = {"HERMES3_RUNS": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    out = subprocess.run([sys.executable, "-m", "hermes3.cli", "reproduce", "--scale", "full", "--executor", "slurm",
                          "--dry-run"], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    rows = {" ".join(line.split()[:-5]): line.split()[-5:] for line in out.stdout.splitlines()[2:]}
    lines = out.stdout.splitlines()
    assert lines[0] == "scale full on slurm; nothing submitted (--dry-run)"
    lr_runs = [ln for ln in lines if "03 LR search" in ln]
    assert len(lr_runs) == 6 and all(" 6 x 8 " in ln and " 48 " in ln and "24 h" in ln for ln in lr_runs)
    assert any("SFT 405B" in ln and " 16 x 8 " in ln and " 128 " in ln for ln in lines)
    assert any("SFT 70B" in ln and " 6 x 8 " in ln for ln in lines)
    assert any("LoRA DPO 8B" in ln and " 1 x 8 " in ln and "24.2 GB" in ln for ln in lines)
    assert rows  # parsed


def test_full_scale_without_a_cluster_refuses_in_one_line(monkeypatch, tmp_path):
    from hermes3.recipe import stages

    monkeypatch.delenv("HERMES3_CLUSTER", raising=False)
    monkeypatch.delenv("HERMES3_EXECUTOR", raising=False)
    monkeypatch.setattr(stages, "_cuda", lambda: False)
    with pytest.raises(Hermes3Error, match=r"^scale 'full' trains Llama 3.1 on GPUs, and this machine has none: "
                                           r"set HERMES3_EXECUTOR=slurm .* it never trains in this kernel$"):
        stages.Recipe("full", root=tmp_path)
    stages.Recipe("demo", root=tmp_path)  # the CPU scales need no cluster


def test_full_scale_stops_before_training_what_it_cannot_score(smoke_data, tmp_path, monkeypatch):
    """The full preset trains a published mixture (a Hub id: no held-out items, no DPO pairs): the
    LR search and DPO stop in one line naming what is missing, before they submit a single job."""
    from hermes3.eval.heldout import require_items
    from hermes3.recipe import executor, stages

    require_items(smoke_data, ["math", "coding"], ["validation", "test"])  # a data build has them
    with pytest.raises(Hermes3Error, match=r"^NousResearch/Hermes-3-Dataset: no held-out items for "
                                           r"validation/general, validation/domain_expert, test/general, "):
        require_items("NousResearch/Hermes-3-Dataset", ["general", "domain_expert"], ["validation", "test"])

    monkeypatch.setenv("HERMES3_EXECUTOR", "slurm")
    monkeypatch.setattr(stages, "_cuda", lambda: False)
    monkeypatch.setattr(executor, "run_all", lambda *a, **k: pytest.fail("a job was submitted"))
    recipe = stages.Recipe("full", root=tmp_path)
    with pytest.raises(Hermes3Error, match="no held-out items for validation/general"):
        recipe.lr_search()
    with pytest.raises(Hermes3Error, match=r"^configs/data/hermes3.yaml: set `preferences` to a JSONL of your DPO "):
        recipe.dpo()


class FakeJob:
    """What submitit returns: a job id, its log and result paths."""

    def __init__(self, folder: Path, job_id: str):
        self.job_id = job_id
        self.paths = type("P", (), {"stdout": folder / f"{job_id}_0_log.out", "stderr": folder / f"{job_id}_0_log.err",
                                    "result_pickle": folder / f"{job_id}_0_result.pkl"})()


class FakeSlurm:
    """A scheduler in a dict: job id -> state; submissions recorded with their sbatch parameters."""

    def __init__(self):
        self.states, self.submitted, self.next = {}, [], 100

    def install(self, monkeypatch):
        fake = self

        class Executor:
            def __init__(self, folder, cluster):
                assert cluster == "slurm"
                self.folder, self.params = Path(folder), {}

            def update_parameters(self, **p):
                self.params = p

            def submit(self, fn, arg):
                fake.next += 1
                job = FakeJob(self.folder, str(fake.next))
                fake.states[job.job_id] = "PENDING"
                fake.submitted.append((job.job_id, self.params, arg))
                return job

        import submitit

        monkeypatch.setattr(submitit, "AutoExecutor", Executor)
        monkeypatch.setattr(slurm, "_attach", lambda folder, job_id: FakeJob(Path(folder), str(job_id)))
        monkeypatch.setattr(slurm, "slurm_state", lambda job_id: fake.states.get(str(job_id)))

    def finish(self, job_id: str, folder: Path, ok=True, value=None):
        """The job ends: it leaves the queue, with a result pickle (submitit's format) or none."""
        self.states.pop(job_id, None)
        if ok:
            path = folder / f"{job_id}_0_result.pkl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pickle.dumps(("success", value)))


def test_slurm_jobs_are_submitted_with_dependencies_and_reattached(on_slurm, monkeypatch, capsys):
    """First call: both jobs submitted, the second with afterok on the first; with wait=false it
    returns at once naming the ids. Second call: the running job is attached to, not resubmitted;
    the one that ended without a result is resubmitted, named in one line with its old log; once
    both have results, the call returns them in order without submitting anything."""
    sched = FakeSlurm()
    sched.install(monkeypatch)
    monkeypatch.setenv("HERMES3_WAIT", "0")
    jobs = [(abs, -1), (abs, -2)]
    names = ["base", "run"]
    with pytest.raises(JobsPending, match=r"^stage: 2 SLURM job\(s\) submitted \(base = 101, run = 102\); run the same"):
        run_all(call, jobs, desc="stage", names=names, after={1: [0]})
    (a, pa, _), (b, pb, _) = sched.submitted
    assert "slurm_additional_parameters" not in pa and pb["slurm_additional_parameters"] == {"dependency": "afterok:101"}
    registry = slurm.Registry(on_slurm).read()
    assert {r["job_id"] for r in registry.values()} == {"101", "102"}
    assert all(r["host"] and r["submitted"] and r["stderr"].endswith("_0_log.err") for r in registry.values())

    sched.states["101"] = "RUNNING"
    sched.finish("102", on_slurm / job_key("stage", "run", call, jobs[1]), ok=False)  # scancel: no result
    with pytest.raises(JobsPending):
        run_all(call, jobs, desc="stage", names=names, after={1: [0]})
    assert [s[0] for s in sched.submitted] == ["101", "102", "103"]  # 101 attached, 102 resubmitted as 103
    assert sched.submitted[2][1]["slurm_additional_parameters"] == {"dependency": "afterok:101"}
    said = capsys.readouterr().out
    assert "stage: job 'run' (SLURM 102) ended without a result (no longer queued: cancelled, killed or out of time): " \
           "submitting it again (log: " in said and "102_0_log.err" in said

    monkeypatch.setenv("HERMES3_WAIT", "1")
    sched.finish("101", on_slurm / job_key("stage", "base", call, jobs[0]), value=1)
    sched.finish("103", on_slurm / job_key("stage", "run", call, jobs[1]), value=2)
    assert run_all(call, jobs, desc="stage", names=names, after={1: [0]}) == [1, 2]
    assert len(sched.submitted) == 3


def test_a_failed_slurm_job_is_one_line_with_its_log(on_slurm, monkeypatch):
    sched = FakeSlurm()
    sched.install(monkeypatch)
    folder = on_slurm / job_key("stage", "sft", call, (abs, -1))
    folder.mkdir(parents=True)
    (folder / "101_0_result.pkl").write_bytes(pickle.dumps(("error", "Traceback ...\nValueError: bad row")))

    def submit_then_fail(job_id):
        return None  # the job leaves the queue at once, with its error pickled

    monkeypatch.setattr(slurm, "slurm_state", submit_then_fail)
    with pytest.raises(JobFailed, match=r"^stage: job 'sft' \(SLURM 101\) failed: ValueError: bad row \(log: .*101_0_log"
                                        r"\.err\); run it again to resubmit$"):
        run_all(call, [(abs, -1)], desc="stage", names=["sft"])


def test_two_local_tasks_train_what_one_process_trains(smoke_data, tmp_path, monkeypatch):
    """A several-task job on this machine (submitit's local executor, gloo DDP): the same losses and
    weights as one process, the global batch being the same (2 rows per step)."""
    import torch
    from transformers import AutoModelForCausalLM

    from hermes3.recipe import pipeline
    from hermes3.train.sft import SFTConfig, read_metrics

    monkeypatch.delenv("HERMES3_CLUSTER", raising=False)
    monkeypatch.setenv("HERMES3_EXECUTOR", "local")
    base = make_tiny_model(tmp_path / "base", smoke_data / "tokenizer", seed=2)
    common = dict(model=str(base), data=str(smoke_data), max_length=256, lr=1e-3, warmup_steps=1, max_steps=3,
                  global_batch=2, bf16="false", wandb_mode="disabled", save_each_epoch=False, shuffle=False)
    one = run_all(call, [(pipeline.sft, SFTConfig(**common, output_dir=str(tmp_path / "one")))], workers=1)[0]
    two = run_all(call, [(pipeline.sft, SFTConfig(**common, output_dir=str(tmp_path / "two")))],
                  resources=[Resources(tasks_per_node=2)], names=["sft 2 tasks"])[0]
    a, b = read_metrics(one), read_metrics(two)
    assert list(a.step) == list(b.step) == [1, 2, 3]
    assert max(abs(x - y) for x, y in zip(a.loss, b.loss)) < 1e-5
    pa = AutoModelForCausalLM.from_pretrained(one / "final").state_dict()
    pb = AutoModelForCausalLM.from_pretrained(two / "final").state_dict()
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], atol=1e-5, rtol=1e-4, msg=k)
    assert (two / "model_digest.txt").exists()  # written once, by the main task


def test_a_scheduled_task_uses_the_cpus_slurm_gave_it(monkeypatch):
    """A SLURM task runs SLURM_CPUS_PER_TASK torch threads, not one per core of the node: jobs
    sharing a node unbound (task/none) would otherwise oversubscribe it."""
    import torch

    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    before = torch.get_num_threads()
    try:
        assert job_threads() == 1 and job_threads(4) == 1
        assert slurm._one_task((lambda _: torch.get_num_threads(), None)) == 1
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
        assert slurm._one_task((lambda _: torch.get_num_threads(), None)) == 3
        monkeypatch.delenv("SLURM_CPUS_PER_TASK")
        assert job_threads() == cores() and job_threads(cores() * 2) == 1
    finally:
        torch.set_num_threads(before)


def test_executor_config_reads_the_cluster_file_and_the_environment(on_slurm, monkeypatch):
    from hermes3.recipe.cluster import executor_config

    cfg = executor_config()
    assert (cfg.backend, cfg.partition, cfg.account, cfg.qos, cfg.wait) == ("slurm", "h100", "nous", "high", True)
    monkeypatch.setenv("HERMES3_EXECUTOR", "local")
    monkeypatch.setenv("HERMES3_WAIT", "0")
    assert (executor_config().backend, executor_config().wait) == ("local", False)
    assert ExecutorConfig().backend == "local"


def test_a_stage_records_the_slurm_jobs_that_ran_for_it(tmp_path):
    from hermes3.recipe.stages import Recipe

    r = Recipe("smoke", root=tmp_path)
    slurm.SINCE_LAST_RECORD[:] = [{"job_id": "7", "name": "DPO", "state": "COMPLETED", "stderr": "7_0_log.err",
                                   "host": "node1", "submitted": "2026-01-01T00:00:00"}]
    r.record("dpo", inputs={}, outputs={})
    assert r.manifest()["stages"]["dpo"]["jobs"] == [{"job_id": "7", "name": "DPO", "state": "COMPLETED",
                                                       "stderr": "7_0_log.err", "host": "node1",
                                                       "submitted": "2026-01-01T00:00:00"}]
    assert slurm.SINCE_LAST_RECORD == []
    r.record("fp8", inputs={}, outputs={})
    assert "jobs" not in r.manifest()["stages"]["fp8"]
