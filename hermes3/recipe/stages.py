"""The recipe as stages that hand their selections on, with a manifest of every hand-off.

    data -> base models -> LR search (Fig. 2) -> SFT at the selected LR -> per-epoch evaluation
    -> the checkpoint chosen by Table 2's rule -> DPO from that checkpoint (Fig. 5, Table 4)
    -> FP8 of the merged model -> benchmarks of every stage (Table 5)

Each stage is a method of ``Recipe`` that returns its output and takes what it needs from the
stage before it: ``sft()`` trains at the LR that ``lr_search()`` selected, ``dpo()`` starts
from the checkpoint that ``epoch_selection()`` chose, and so on. A stage asks for its
inputs by calling the earlier stage, which is cheap when that stage is done (outputs are
reused when built from the same config, evaluations are cached by model bytes), so a
notebook can run on its own in a fresh kernel.

Every stage records in ``<runs>/<scale>/manifest.json``: its inputs, outputs, config, the
selection it made and why, and the code version. Neither open-instruct nor
alignment-handbook passes the chosen checkpoint on; here the next stage reads it from there.

>>> r = Recipe("smoke", root="/tmp/h3-doctest-recipe")
>>> r.preset.lrs
(0.0003, 0.003)
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from hermes3.core.config import load_config, to_dict
from hermes3.core.errors import Hermes3Error
from hermes3.core.paths import resolve, runs
from hermes3.data.build import SPLITS
from hermes3.recipe import executor, manifest, pipeline
from hermes3.recipe.cluster import Resources, executor_config
from hermes3.recipe.jobs import evaluate_job, final_heldout_scores, fp8_job, heldout, heldout_job, sft_then_heldout
from hermes3.recipe.presets import preset
from hermes3.recipe.selection import select_lr
from hermes3.train.modeling import model_digest

GROUPS = ("gpt4all_standin", "agieval_standin", "ifeval_standin", "mtbench_standin")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _slug(label: str) -> str:
    return label.split(" ")[0].replace("/", "_")


class Recipe:
    """The stages of one scale (``smoke`` | ``demo`` | ``full``), writing under ``root``
    (default ``<runs>/<scale>``)."""

    def __init__(self, scale: str = "demo", root: str | Path | None = None):
        self.scale = scale
        self.preset = preset(scale)
        self.root = Path(root) if root else runs(scale)
        self.manifest_path = self.root / "manifest.json"
        if self.preset.gpus and executor_config().backend == "local" and not _cuda():
            raise Hermes3Error(f"scale {scale!r} trains Llama 3.1 on GPUs, and this machine has none: set "
                               "HERMES3_EXECUTOR=slurm (and HERMES3_CLUSTER=<cluster.yaml> for partition, account and "
                               "QoS; configs/cluster/slurm.yaml) or run on a GPU machine; it never trains in this kernel")

    # ------------------------------------------------------------------ jobs

    def _job(self, fn, arg, name: str, res: Resources | None = None):
        """``fn(arg)`` as one job of the configured executor: in this process on one local worker
        (the demo), a SLURM job with ``res`` on a cluster. Returns its result."""
        return executor.run_all(executor.call, [(fn, arg)], desc=name, names=[name],
                                resources=[res or self._job_resources()])[0]

    def _job_resources(self) -> Resources:
        return Resources(timeout_min=self.preset.job_minutes, gpus_per_node=1 if self.preset.gpus else 0)

    def _train_resources(self, cfg) -> Resources:
        """A training job's processes: one per GPU over the nodes of the recipe's ``cluster`` at full
        scale; elsewhere the cluster file's ``train_tasks`` (2 gloo processes in the SLURM check), else one."""
        if self.preset.gpus:
            c = cfg.cluster
            return Resources(nodes=c.nodes, tasks_per_node=c.gpus_per_node, gpus_per_node=c.gpus_per_node,
                             cpus_per_task=8, timeout_min=self.preset.train_minutes)
        return Resources(tasks_per_node=executor_config().train_tasks or 1, timeout_min=self.preset.train_minutes)

    # ------------------------------------------------------------------ manifest

    def manifest(self) -> dict:
        return manifest.read(self.manifest_path, self.scale)

    def record(self, stage: str, **handoff) -> None:
        """One stage's hand-off into the manifest (``hermes3.recipe.manifest.record``), with the
        SLURM jobs that ran for it since the last record (ids, state, logs, host, submission time)."""
        from hermes3.recipe import slurm

        jobs, slurm.SINCE_LAST_RECORD[:] = list(slurm.SINCE_LAST_RECORD), []
        manifest.record(self.manifest_path, self.scale, stage, **handoff, jobs=jobs)

    def selection(self, stage: str):
        return self.manifest()["stages"].get(stage, {}).get("selection")

    # ------------------------------------------------------------------ data and bases

    def data(self) -> Path:
        """The training mixture (a `hermes3 data build` folder)."""
        from hermes3.data.build import DataConfig

        cfg = load_config(DataConfig, resolve(self.preset.data), [*self.preset.data_overrides,
                                                                  f"out_dir={self.root / 'data'}"])
        if cfg.source:  # a published mixture, used as it is: SFT reads it through hermes3.data.loaders
            if self.selection("data") != {"source": cfg.source}:
                self.record("data", inputs={"config_file": self.preset.data}, outputs={"source": cfg.source},
                            config=to_dict(cfg), selection={"source": cfg.source})
            return Path(cfg.source)
        out = pipeline.data(cfg)
        if self.manifest()["stages"].get("data", {}).get("outputs", {}).get("manifest") != manifest.digest_file(out / "manifest.json"):
            built = json.loads((out / "manifest.json").read_text())
            self.record("data", inputs={"config_file": self.preset.data},
                        outputs={"dir": str(out), "manifest": manifest.digest_file(out / "manifest.json")}, config=to_dict(cfg),
                        results={"eval_items": built["eval_items"], "decontamination": built["decontamination"]})
        return out

    def _preferences(self) -> Path:
        """DPO's preference pairs: the data build's, or the data config's ``preferences`` file."""
        from hermes3.data.build import DataConfig

        cfg = load_config(DataConfig, resolve(self.preset.data))
        if cfg.source and not cfg.preferences:  # a published SFT mixture has no DPO pairs
            raise Hermes3Error(f"{self.preset.data}: set `preferences` to a JSONL of your DPO pairs (prompt, chosen, "
                               f"rejected); {cfg.source} holds SFT conversations only")
        return resolve(cfg.preferences) if cfg.preferences else self.data()

    def table1_data(self) -> Path:
        """The mixture at the report's Table 1 shares (notebook 01)."""
        from hermes3.data.build import DataConfig

        cfg = load_config(DataConfig, resolve(self.preset.table1_data), [f"out_dir={self.root / 'table1'}"])
        out = pipeline.data(cfg)
        import pandas as pd

        t1 = pd.read_csv(out / "table1.csv")
        rows = t1[t1.category != "Total"]
        self.record("table1", inputs={"config_file": self.preset.table1_data}, outputs={"dir": str(out)},
                    config=to_dict(cfg), results={"output_share": float(t1.iloc[-1]["ours_output_%"]) / 100,
                                                  "max_share_gap_points": float((rows["ours_%"] - rows["report_%"]).abs().max())})
        return out

    def _base_config(self, label: str):
        """The BaseConfig of a tiny size in ``bases`` (None for a folder or Hub id)."""
        from hermes3.train.base_model import SIZES, BaseConfig

        model = self.preset.bases[label]
        if model not in SIZES:
            return None
        return load_config(BaseConfig, None, [f"size={model}", f"data={self.data()}", *self.preset.base_overrides,
                                              f"out_dir={self.root / 'base' / model}"])

    def bases(self) -> dict:
        """Every base of Fig. 4 (tiny sizes pre-trained side by side, ``hermes3.recipe.executor``), all with
        the same token budget. ``{label: folder or Hub id}``."""
        self._pretrain_and_train([], "pre-training bases")
        return {label: self.base(label) for label in self.preset.bases}

    def _base_path(self, label: str) -> str:
        """Where ``base(label)`` is (or will be), without building it."""
        cfg = self._base_config(label)
        return self.preset.bases[label] if cfg is None else str(cfg.out_dir)

    def _pretrain_and_train(self, runs: list[tuple], desc: str, then=None) -> dict:
        """The bases that are missing and the SFT ``runs`` (``(config, name, base label)``) that are
        not complete, in one pool: a run waits for its own base only. Why one pool: tiny-m's base
        is done minutes before tiny-l's, and its LR-search runs fill that time (measured: the
        search finished ~60 s sooner than after a separate pool of bases). ``then(config)``: a
        ``(function, argument)`` job for each run trained here, started when that run is done
        (short scoring jobs fill the core that the last run leaves idle); returns ``{name: its
        result}``."""
        cfgs = {label: self._base_config(label) for label in self.preset.bases}
        todo = [k for k, c in cfgs.items() if c is not None and not pipeline.pretrained(c)]
        # Presets list the sizes small to large: the largest, the critical path, starts first.
        todo.sort(key=lambda k: -list(self.preset.bases).index(k))
        jobs = [(pipeline.base, cfgs[k]) for k in todo]
        res = [self._job_resources()] * len(jobs)
        names, after, follow = [f"base {_slug(k)}" for k in todo], {}, {}
        for cfg, name, label in runs:
            if label in todo:  # its base is about to be (re)built: the run cannot be complete
                after[len(jobs)] = [todo.index(label)]
            elif pipeline.sft_complete(cfg):
                continue
            jobs.append((pipeline.sft, cfg))
            res.append(self._train_resources(cfg))
            names.append(name)
            if then is not None:
                after[len(jobs)] = [len(jobs) - 1]
                follow[name] = len(jobs)
                jobs.append(then(cfg))
                res.append(self._job_resources())
                names.append(f"{name}: scores")
        results = executor.run_all(executor.call, jobs, desc=desc, names=names, after=after, resources=res)
        return {name: results[i] for name, i in follow.items()}

    def base(self, label: str | None = None) -> str:
        """A base model of ``label`` (default the main line's): tiny sizes are pre-trained here
        on the plain text of the training mixture, all with the same token budget."""
        label = label or self.preset.main
        cfg = self._base_config(label)
        if cfg is None:
            return self.preset.bases[label]  # a folder or Hub id
        folder = self._job(pipeline.base, cfg, f"base {cfg.size}")
        metrics = json.loads((folder / "metrics.json").read_text())
        self.record(f"base/{cfg.size}", inputs={"data": str(cfg.data)}, outputs={"dir": str(folder)},
                    config=metrics["config"], results={k: metrics.get(k) for k in (
                        "parameters", "train_tokens", "heldout_loss_trained", "seconds", "bf16")})
        return str(folder)

    # ------------------------------------------------------------------ SFT configs

    def _sft_config(self, yaml: str, overrides, **kw):
        from hermes3.train.sft import SFTConfig

        cfg = load_config(SFTConfig, resolve(yaml), list(overrides))
        return replace(cfg, **kw)

    def _lr_run(self, lr: float, label: str | None = None):
        """The one-epoch SFT run of the LR search (and of Fig. 4 for other sizes)."""
        label = label or self.preset.main
        slug = _slug(label)
        main = label == self.preset.main
        folder = self.root / ("lr_search" if main else "loss_curves") / (f"lr-{lr:g}" if main else slug)
        return self._sft_config(self.preset.size_sft.get(label, self.preset.sft),
                                [*self.preset.sft_overrides, *self.preset.lr_overrides],
                                lr=lr, data=str(self.data()), model=self._base_path(label), output_dir=str(folder),
                                name=f"{self.scale}-{slug}-lr{lr:g}", save_each_epoch=False, wandb_mode="disabled")

    # ------------------------------------------------------------------ Fig. 2

    def lr_search(self):
        """Fig. 2: one SFT run per LR, scored by the GPT4All stand-in (mean held-out log-probability
        per reference token of the ``lr_categories`` items). Returns ``(scores, per_item, selected_lr)``."""
        import pandas as pd

        from hermes3.eval.compare import bootstrap_diff
        from hermes3.eval.heldout import require_items
        from hermes3.train.sft import read_metrics

        p = self.preset
        require_items(self.data(), list(p.lr_categories), SPLITS)  # before any run trains
        rows, items, tests = [], {}, []
        cfgs = [self._lr_run(lr) for lr in p.lrs]
        # every base now (Fig. 4 needs them all), in the same pool as the LR runs and their scoring;
        # each run is scored on validation (the choice) and test (the finding, which the choice never sees)
        score = (self.data(), list(p.lr_categories), p.heldout_limit, SPLITS)
        scored = self._pretrain_and_train([(c, f"lr {lr:g}", p.main) for lr, c in zip(p.lrs, cfgs)],
                                          "pre-training bases, LR search runs",
                                          then=lambda cfg: (final_heldout_scores, (cfg, *score)))
        self.bases()  # records each base in the manifest
        for lr, cfg in zip(p.lrs, cfgs):
            out = pipeline.sft(cfg)
            s = scored.get(f"lr {lr:g}")
            if s is None:  # a run complete before this call
                s = self._job(final_heldout_scores, (cfg, *score), f"lr {lr:g}: scores")
            items[lr] = s["validation"].mean_logprob.to_numpy()
            loss = float(read_metrics(out).loss.tail(5).mean())
            rows.append({"lr": lr, **_lr_scores(s["validation"], p.lr_categories), "train_loss": loss})
            tests.append({"lr": lr, **_lr_scores(s["test"], p.lr_categories), "train_loss": loss})
        scores, test = pd.DataFrame(rows), pd.DataFrame(tests)
        best = select_lr(scores, "gpt4all_standin")
        leads = {}
        for end in (min(p.lrs), max(p.lrs)):
            if end != best:
                d, lo, hi = bootstrap_diff(items[end], items[best])
                leads[f"{end:g}"] = {"lead": d, "ci95": [lo, hi]}
        interior = best not in (min(p.lrs), max(p.lrs))
        why = (f"highest GPT4All stand-in score ({scores.gpt4all_standin.max():.4f} mean log-prob per token over "
               f"{len(items[best])} validation items); " + "; ".join(
                   f"lead over lr {k}: {v['lead']:+.4f} (95% paired bootstrap CI {v['ci95'][0]:+.4f}..{v['ci95'][1]:+.4f})"
                   for k, v in leads.items()) + ("" if interior else "; the best LR is at the edge of the grid"))
        self.record("lr_search", inputs={"lrs": list(p.lrs), "base": self.base(), "data": str(self.data())},
                    outputs={"runs": str(self.root / "lr_search")}, config=to_dict(self._lr_run(best)),
                    selection={"lr": best, "interior": interior, "leads": leads}, why=why,
                    split={"selection": "validation", "scores": "validation", "test_scores": "test", "test_best_lr": "test"},
                    results={"scores": scores.to_dict("records"), "test_scores": test.to_dict("records"),
                             "test_best_lr": select_lr(test, "gpt4all_standin")})
        per_item = pd.DataFrame({f"{lr:g}": v for lr, v in items.items()})
        return scores, per_item, best, test

    def selected_lr(self) -> float:
        sel = self.selection("lr_search")
        if sel is None or sel.get("lr") not in self.preset.lrs:
            self.lr_search()
            sel = self.selection("lr_search")
        return float(sel["lr"])

    # ------------------------------------------------------------------ SFT, Fig. 4, Table 2

    def _main_sft_config(self):
        return self._sft_config(self.preset.sft, self.preset.sft_overrides, lr=self.selected_lr(),
                                data=str(self.data()), model=self._base_path(self.preset.main),
                                output_dir=str(self.root / "sft"), name=f"{self.scale}-sft", save_each_epoch=True)

    def sft(self) -> Path:
        """The main SFT run (every epoch checkpointed) at the LR search's selected LR."""
        self.base()
        cfg = self._main_sft_config()
        out = self._job(pipeline.sft, cfg, "main SFT run", self._train_resources(cfg))
        self.record("sft", inputs={"lr": cfg.lr, "lr_from": "lr_search", "base": cfg.model, "data": cfg.data},
                    outputs={"dir": str(out), "final": str(out / "final")}, config=to_dict(cfg))
        return out

    def loss_curves(self) -> dict:
        """Fig. 4: each size fine-tuned one epoch at the selected LR from bases with the same
        pre-training budget. ``{label: {"metrics": DataFrame, "heldout_loss": float, ...}}``."""
        from hermes3.eval.heldout import answer_loss
        from hermes3.train.sft import read_metrics

        lr, out = self.selected_lr(), {}
        cfgs = [self._lr_run(lr, label) for label in self.preset.bases]
        jobs, names, res = [], [], []
        for label, cfg in reversed(list(zip(self.preset.bases, cfgs))):  # largest (longest) first
            final = cfg.output() / "final"
            if not pipeline.sft_complete(cfg):
                jobs.append((sft_then_heldout, (cfg, *self._heldout_settings("test"))))
                res.append(self._train_resources(cfg))
            elif not heldout().heldout_path(final, *self._heldout_settings("test")).exists():
                jobs.append((heldout_job, (final, *self._heldout_settings("test"))))
                res.append(self._job_resources())
            else:
                continue
            names.append(_slug(label))
        # The main SFT run (notebook 05; its LR is known now) trains in this pool too, first, on one
        # thread, while the other core runs these one-epoch runs and the base's Table 5 evaluation
        # (notebook 08; its model is final since notebook 03): on two cores, one thread each side by
        # side beats the two in turn on two threads. Not on one worker, where it would only move
        # that work here.
        if jobs and executor.default_workers(len(jobs) + 1) > 1:
            main = self._main_sft_config()
            if not pipeline.sft_complete(main):
                jobs.insert(0, (pipeline.sft, main))
                names.insert(0, "main SFT run (notebook 05)")
                res.insert(0, self._train_resources(main))
            for job, name in self._eval_parts(["base"]):
                jobs.append(job)
                names.append(name)
                res.append(self._job_resources())
        executor.run_all(executor.call, jobs, desc="loss-curve runs", names=names, resources=res)
        for label, cfg in zip(self.preset.bases, cfgs):
            run = pipeline.sft(cfg)
            held = heldout().heldout_cached(run / "final", *self._heldout_settings("test"))
            base_metrics = json.loads((Path(self.base(label)) / "metrics.json").read_text())
            metrics = read_metrics(run)
            fresh = held[~held.answer_overlap]
            out[label] = {"metrics": metrics, "final_train_loss": float(metrics.loss.tail(self.preset.final_steps).mean()),
                          "heldout_loss": answer_loss(held), "items": len(held),
                          "heldout_loss_no_overlap": answer_loss(fresh), "items_no_overlap": len(fresh),
                          "parameters": base_metrics["parameters"], "run": str(run)}
        self.record("loss_curves", inputs={"lr": lr, "lr_from": "lr_search"},
                    outputs={k: v["run"] for k, v in out.items()}, split={"results": "test"},
                    results={k: {key: v[key] for key in ("final_train_loss", "heldout_loss", "items",
                                                         "heldout_loss_no_overlap", "items_no_overlap", "parameters")}
                             for k, v in out.items()})
        return out

    def epoch_selection(self):
        """Table 2: score every epoch checkpoint on the four groups, pick by the min-max rule.
        Returns ``(table, selected checkpoint)``."""
        from hermes3.recipe.selection import epoch_table, tradeoff
        from hermes3.train.sft import epoch_checkpoints

        run = self.sft()
        metric = self.preset.epoch_metric
        table, sel = epoch_table(run, self.data(), limit=self.preset.heldout_limit if metric == "likelihood"
                                 else self.preset.eval_limit, metric=metric, cache=self.root / "heldout",
                                 generation_limit=self.preset.table2_generation_limit)
        ckpts = {f"epoch_{round(e)}": p for e, p in epoch_checkpoints(run)}
        chosen = ckpts[sel.best]
        self.record("epoch_selection", inputs={"sft_run": str(run)}, outputs={"checkpoints": {k: str(v) for k, v in ckpts.items()}},
                    selection={"epoch": sel.best, "checkpoint": str(chosen)},
                    split={"selection": "validation", "results": "validation"},
                    why=(f"Table 2 rule on {metric} (validation split): each group min-max normalised across epochs, "
                         f"the four averaged; {sel.best} has the highest total ({float(sel.total.max()):.2f})"),
                    results={"total": {k: float(v) for k, v in sel.total.items()}, **tradeoff(table),
                             "table": {row: {k: float(v) for k, v in vals.items()} for row, vals in table.T.items()}})
        return table, chosen

    def selected_checkpoint(self) -> Path:
        sel = self.selection("epoch_selection")
        if sel is None or not manifest.resolve_path(self.manifest_path, sel["checkpoint"]).exists():
            return self.epoch_selection()[1]
        return manifest.resolve_path(self.manifest_path, sel["checkpoint"])

    # ------------------------------------------------------------------ DPO, FP8, benchmarks

    def dpo(self) -> Path:
        """Fig. 5 / Table 4: LoRA DPO from the checkpoint Table 2 selected."""
        from hermes3.train.dpo import DPOConfig

        prefs = self._preferences()  # before the SFT stages it depends on train
        ckpt = self.selected_checkpoint()
        cfg = load_config(DPOConfig, resolve(self.preset.dpo), [*self.preset.dpo_overrides])
        cfg = replace(cfg, model=str(ckpt), data=str(prefs), output_dir=str(self.root / "dpo"),
                      name=f"{self.scale}-dpo")
        from hermes3.eval.compare import accuracy_by_type, bootstrap_mean
        from hermes3.train.dpo_loss import pair_accuracy

        if executor.default_workers(3) > 1 and not pipeline.dpo_complete(cfg):
            # DPO on one thread beside the SFT model's evaluation (Table 4 needs both) and the
            # held-out likelihoods notebook 08 compares: independent jobs of ~3 minutes each side
            # instead of one after the other on two threads.
            jobs = [((pipeline.dpo, cfg), "DPO"), *self._eval_parts(["SFT"]), *self._heldout_parts(["base", "SFT"])]
            executor.run_all(executor.call, [j for j, _ in jobs], desc="DPO, SFT evaluation",
                             names=[n for _, n in jobs],
                             resources=[self._train_resources(cfg)] + [self._job_resources()] * (len(jobs) - 1))
        out = self._job(pipeline.dpo, cfg, "DPO", self._train_resources(cfg))
        held = json.loads((out / "heldout.json").read_text())
        after = held.get("after", {})
        results = {"heldout_before": held.get("before", {}),
                   "heldout_after": {k: v for k, v in after.items() if k != "margins"}}
        if after.get("margins"):
            acc, lo, hi = bootstrap_mean(pair_accuracy(after["margins"]).tolist())  # a tie counts half
            results["heldout_accuracy"] = {"value": acc, "ci95": [lo, hi], "pairs": len(after["margins"])}
            results["heldout_accuracy_by_type"] = accuracy_by_type(held.get("per_pair", []))
        self.record("dpo", inputs={"model": str(ckpt), "model_from": "epoch_selection", "data": cfg.data},
                    outputs={"dir": str(out), "merged": str(out / "merged")}, config=to_dict(cfg), results=results,
                    selection={"lr": cfg.lr}, split={"selection": "validation", "results": "DPO's held-out pairs"},
                    why=f"the DPO LR of {self.preset.dpo}, measured by hand on the validation split (its comment); the "
                        "held-out preference pairs of the results are DPO's own, kept out of training and of every choice")
        return out

    def fp8(self) -> Path:
        """FP8_DYNAMIC of the merged DPO model."""

        src = self.dpo() / "merged"
        out = self.root / "fp8"
        done = self.manifest()["stages"].get("fp8", {})
        if not ((out / "config.json").exists() and done.get("inputs", {}).get("model_digest") == model_digest(src)):
            self._job(fp8_job, (src, out), "FP8")
        self.record("fp8", inputs={"model": str(src), "model_from": "dpo", "model_digest": model_digest(src)},
                    outputs={"dir": str(out)})
        return out

    STAGES = ("base", "SFT", "SFT+DPO", "SFT+DPO FP8")

    def stage_model(self, name: str) -> Path:
        """The model of a stage: base, SFT (the checkpoint Table 2 selected), SFT+DPO, its FP8."""
        get = {"base": lambda: Path(self.base()), "SFT": self.selected_checkpoint,
               "SFT+DPO": lambda: self.dpo() / "merged", "SFT+DPO FP8": self.fp8}
        if name not in get:
            raise ValueError(f"unknown stage {name!r}; known: {', '.join(get)}")
        return get[name]()

    def _eval_args(self, name: str) -> tuple:
        """``evaluate_job``'s arguments for a stage's model: the preset's suite on the test split (a finding)."""
        p = self.preset
        return (str(self.stage_model(name)), p.eval_suite, str(self.data()), p.eval_limit, p.max_gen_toks, "test")

    def evaluate(self, name: str):
        """The preset's suite on a stage's model (cached by model bytes, per task)."""
        return self._job(evaluate_job, self._eval_args(name), f"evaluate {name}")

    def _eval_parts(self, names) -> list[tuple]:
        """``[(job, label)]``: the uncached tasks of each stage's evaluation in parts of about equal
        time, one per worker (``evaluate`` caches per task, so the parts add up to the whole).
        Why parts: one evaluation alone on two threads took 196 s; generation of a tiny model
        gains little from a second thread, two one-thread processes gain nearly 2x."""
        from hermes3.eval.tasks import TASK_SECONDS, resolve_tasks

        workers = executor.default_workers(2)
        out = []
        for name in names:
            model, suite, *rest = self._eval_args(name)
            todo = [t for t in resolve_tasks(suite)[0] if evaluate_job((model, [t], *rest), cache_only=True) is None]
            parts = executor.balance({t: TASK_SECONDS.get(t, 10.0) for t in todo}, workers)
            out += [((evaluate_job, (model, part, *rest)), f"evaluate {name} ({i + 1}/{len(parts)})")
                    for i, part in enumerate(parts)]
        return out

    def evaluate_stages(self, names) -> dict:
        """``{name: evaluate(name)}``, the uncached tasks in parts side by side (``_eval_parts``)."""
        jobs = self._eval_parts(names)
        executor.run_all(executor.call, [j for j, _ in jobs], desc="evaluations", names=[n for _, n in jobs],
                         resources=[self._job_resources()] * len(jobs))
        return {n: self.evaluate(n) for n in names}

    def _table5_rows(self) -> tuple[dict, dict]:
        """``(groups, subsets)`` that ``compare`` and ``accuracies`` score on the test split: each
        stand-in group (its tasks' items pooled); the synthetic stand-ins (all, and those whose answer
        shares no 13-gram with a training answer) apart from the real benchmarks' items; the held-out
        tool-call items (exact match, right functions)."""
        from hermes3.eval.lmeval_tasks import synthetic_items
        from hermes3.eval.tasks import STANDIN_GROUPS
        from hermes3.eval.toolcalls import tool_call_items

        calls = tool_call_items(self.data(), self.preset.eval_limit)
        tasks = [t for g in GROUPS for t in STANDIN_GROUPS[g]]
        synthetic = [t for t in tasks if t.startswith("hermes_")]
        fresh = [(t, [i for i, it in enumerate(synthetic_items(self.data(), t, "test", self.preset.eval_limit))
                      if not it["overlap"]["answer_ngram"]]) for t in synthetic]
        return ({g: list(STANDIN_GROUPS[g]) for g in GROUPS},
                {"synthetic stand-ins": [(t, None) for t in synthetic], "synthetic, no answer overlap": fresh,
                 "real benchmarks": [(t, None) for t in tasks if t not in synthetic],
                 "tool calls": ("hermes_tool_use", calls), "tool calls: right functions": (self._functions, calls)})

    def accuracies(self, results: dict):
        """Each stage's accuracy in ``results`` (``benchmarks``) on the rows of ``compare``, with its
        95% Wilson interval (``compare.accuracies``): what Table 5's figure of ours draws."""
        from hermes3.eval.compare import accuracies

        return accuracies(results, *self._table5_rows())

    def compare(self, a: str, b: str):
        """Stage ``b`` vs stage ``a`` on the same test items: per stand-in group (items pooled), the
        synthetic stand-ins (all, and those whose answer shares no 13-gram with training) apart from
        the real benchmarks' items, the held-out tool calls and all items, with the exact McNemar
        test; recorded in the manifest."""
        from hermes3.eval.compare import paired

        ra, rb = self.evaluate_stages([a, b]).values()
        table = paired(ra, rb, *self._table5_rows())
        self.record(f"compare/{a} -> {b}", inputs={a: str(self.stage_model(a)), b: str(self.stage_model(b))},
                    outputs={}, results=table.reset_index().to_dict("records"), split={"results": "test"})
        return table

    def _heldout_settings(self, split: str) -> tuple:
        """What ``heldout_cached`` takes after the model: the data build, the split, the limit, the cache folder."""
        return self.data(), split, self.preset.heldout_limit, self.root / "heldout"

    def heldout(self, name: str):
        """Held-out reference log-likelihood of every category's items under a stage's model
        (``hermes3.eval.heldout``); cached in ``<root>/heldout/`` by the model's bytes."""
        return self._job(heldout_job, (self.stage_model(name), *self._heldout_settings("test")), f"held-out likelihood {name}")

    def _heldout_parts(self, names) -> list[tuple]:
        """``[(job, label)]`` computing the uncached held-out likelihoods of these stages."""
        models = {n: self.stage_model(n) for n in names}
        return [((heldout_job, (m, *self._heldout_settings("test"))), f"held-out likelihood {n}")
                for n, m in models.items() if not heldout().heldout_path(m, *self._heldout_settings("test")).exists()]

    def compare_likelihood(self, a: str, b: str):
        """Stage ``b`` vs stage ``a`` on the test split's reference answers' log-likelihood, per
        stand-in group (the group's synthetic categories): paired bootstrap interval and sign test
        (``compare.paired_likelihood``), on every test item and on those whose answer shares no
        13-gram with a training answer (index level ``subset``); recorded in the manifest."""
        import pandas as pd

        from hermes3.eval.compare import paired_likelihood
        from hermes3.eval.tasks import standin_categories

        jobs = self._heldout_parts([a, b])
        executor.run_all(executor.call, [j for j, _ in jobs], desc="held-out likelihoods", names=[n for _, n in jobs],
                         resources=[self._job_resources()] * len(jobs))
        sa, sb, groups = self.heldout(a), self.heldout(b), standin_categories(GROUPS)
        fresh = ~sa.answer_overlap
        table = pd.concat({"test": paired_likelihood(sa, sb, groups),
                           "test, no answer overlap": paired_likelihood(sa[fresh], sb[fresh], groups)}, names=["subset"])
        self.record(f"likelihood/{a} -> {b}", inputs={a: str(self.stage_model(a)), b: str(self.stage_model(b))},
                    outputs={}, results=table.reset_index().to_dict("records"), split={"results": "test"})
        return table

    def benchmarks(self) -> dict:
        """Table 5 at this scale: ``{stage: EvalResult}`` on the preset's suite, same items for all."""
        from hermes3.eval.toolcalls import tool_call_accuracy, tool_call_items

        res = self.evaluate_stages(self.STAGES)
        calls = tool_call_items(self.data(), self.preset.eval_limit)
        self.record("benchmarks", inputs={k: str(self.stage_model(k)) for k in self.STAGES}, outputs={},
                    split={"results": "test"},
                    results={k: {**{r.task: r.value for r in v.table[v.table.primary].itertuples()},
                                 "tool_calls": tool_call_accuracy(v, calls),
                                 "tool_call_functions": _mean(self._functions(v).values())}
                             for k, v in res.items()})
        return res

    def tool_call_types(self):
        """Per call type of the test split's tool-call items, each stage's exact matches and right
        functions (``hermes3.eval.toolcalls.tool_call_types``); recorded in the manifest."""
        from hermes3.eval.toolcalls import tool_call_types

        table = tool_call_types(self.evaluate_stages(self.STAGES), self.data(), self.preset.eval_limit)
        self.record("tool_call_types", inputs={k: str(self.stage_model(k)) for k in self.STAGES}, outputs={},
                    results=table.reset_index().to_dict("records"), split={"results": "test"})
        return table

    def _functions(self, result) -> dict:
        from hermes3.eval.toolcalls import tool_call_functions

        return tool_call_functions(result, self.data(), self.preset.eval_limit)


def _lr_scores(s, categories) -> dict:
    """One LR's row of Fig. 2: per category and for the GPT4All stand-in (all of them), the mean
    log-prob per token with its 95% bootstrap interval (``_lo``, ``_hi``), and the item count."""
    from hermes3.eval.compare import bootstrap_mean

    row = {}
    for col, x in [*((c, s[s.category == c].mean_logprob) for c in categories), ("gpt4all_standin", s.mean_logprob)]:
        row[col], row[f"{col}_lo"], row[f"{col}_hi"] = bootstrap_mean(x.to_numpy())
    return {**row, "items": len(s)}


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


