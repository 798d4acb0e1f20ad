"""The figures the notebooks show (matplotlib + seaborn), one function per figure.

Each returns the matplotlib Figure and, with ``path``, saves a PNG (``figures/...``). Bars of a
sample statistic (an accuracy over items) carry their 95% interval; the report's numbers, labelled
"report", have none (the report gives none). Legends sit outside the axes, where they cover no data.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np


def _legend_outside(ax):
    """The legend right of ``ax``, outside it: inside, it covered the longest bars (Table 5's figures).
    ``tight_layout`` and ``bbox_inches="tight"`` make room for it."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, fontsize=8)


def _save(fig, path):
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig


def plot_packing_figure3(lengths: list[int], row_len: int = 16, path=None):
    """Report Fig. 3: samples laid into a varlen buffer of ``row_len``-wide rows (left)
    and the block-diagonal causal attention that ``cu_seqlens`` implies (right)."""
    cu = np.concatenate([[0], np.cumsum(lengths)])
    total = int(cu[-1])
    n_rows = -(-total // row_len)
    owner = np.full(n_rows * row_len, -1)
    for k in range(len(lengths)):
        owner[cu[k]:cu[k + 1]] = k
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1.3, 1]})
    cmap = plt.get_cmap("tab20", max(len(lengths), 1))
    grid = owner.reshape(n_rows, row_len)
    a.imshow(np.ma.masked_less(grid, 0), cmap=cmap, vmin=-0.5, vmax=len(lengths) - 0.5, aspect="equal")
    for (r, c), k in np.ndenumerate(grid):
        a.text(c, r, chr(65 + k) if k >= 0 else "pad", ha="center", va="center", fontsize=8 if k >= 0 else 6)
    a.set_title(f"packed buffer, {total} tokens in {n_rows}x{row_len}")
    a.set_xticks([])
    a.set_yticks(range(n_rows))
    mask = np.zeros((total, total))
    for k in range(len(lengths)):
        s, e = cu[k], cu[k + 1]
        mask[s:e, s:e] = np.tril(np.ones((e - s, e - s))) * (k + 1)
    b.imshow(np.ma.masked_equal(mask, 0) - 1, cmap=cmap, vmin=-0.5, vmax=len(lengths) - 0.5)
    b.set_title("attention: block-diagonal causal (no cross-sample)")
    b.set_xlabel("key position")
    b.set_ylabel("query position")
    fig.suptitle("cu_seqlens: " + str(cu.tolist()), fontsize=9)
    return _save(fig, path)


def plot_length_histograms(sets: dict[str, list[int]], max_length: int = 8192, path=None):
    """Token-length histogram of each real set, with the pack length marked."""
    fig, axes = plt.subplots(1, len(sets), figsize=(3.2 * len(sets), 2.8), squeeze=False)
    for ax, (name, lens) in zip(axes[0], sets.items()):
        ax.hist(lens, bins=40, color="#4C72B0")
        ax.axvline(max_length, color="red", lw=1) if max(lens) > max_length * 0.5 else None
        ax.set_title(f"{name} (n={len(lens)})", fontsize=9)
        ax.set_xlabel("tokens")
    axes[0][0].set_ylabel("conversations")
    fig.tight_layout()
    return _save(fig, path)


def plot_packing_efficiency(df, report: float = 0.96, path=None):
    """Efficiency per real set and packer, the report's 96% as a labelled line. No intervals: each
    bar is the exact ratio of a whole set's tokens to its slots, not an estimate from a sample."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.barplot(data=df, x="set", y="efficiency", hue="packer", ax=ax, errorbar=None)
    ax.axhline(report, color="red", ls="--", lw=1, label=f"report (Hermes 3): {report:.0%}")
    ax.set_ylim(min(0.8, float(df["efficiency"].min()) - 0.02), 1.0)
    _legend_outside(ax)
    ax.set_title("packing efficiency at 8192 (real tokens / slots)")
    fig.tight_layout()
    return _save(fig, path)


def plot_table1(df, path=None):
    """Report Table 1 vs ours: share of tokens per category (the Total row excluded). No intervals:
    our shares are exact counts of the data build, not estimates from a sample."""
    rows = df[df.category != "Total"]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    y = np.arange(len(rows))
    ax.barh(y - 0.2, rows["report_%"], height=0.4, label="report (Hermes 3, 390M tokens)", color="#999999")
    ax.barh(y + 0.2, rows["ours_%"], height=0.4, label=f"ours ({int(df.iloc[-1]['ours_tokens']):,} tokens)",
            color="#4C72B0")
    ax.set_yticks(y, rows["category"])
    ax.invert_yaxis()
    ax.set_xlabel("% of tokens")
    _legend_outside(ax)
    ax.set_title("Table 1: data mixture by category")
    fig.tight_layout()
    return _save(fig, path)


def plot_category_lengths(records: list[dict], path=None):
    """Token-length distribution of the SFT conversations per category."""
    import pandas as pd
    import seaborn as sns

    df = pd.DataFrame({"category": [r["category"] for r in records], "tokens": [r["tokens"] for r in records]})
    fig, ax = plt.subplots(figsize=(9, 3.6))
    sns.boxplot(data=df, x="category", y="tokens", ax=ax, color="#8FB3D9", fliersize=2)
    ax.set_yscale("log")
    ax.tick_params(axis="x", rotation=30)
    ax.set_title("conversation length per category (tokens, log scale)")
    fig.tight_layout()
    return _save(fig, path)


def plot_table5(t5, path=None):
    """Report Table 5: Hermes 3 vs Llama 3.1 Instruct per benchmark at each size
    (MT-Bench, on a 0-10 scale, drawn x10). The report's numbers only, so no intervals (it gives
    none); ours, with intervals, are ``plot_scores``."""
    sizes = ("8B", "70B", "405B")
    fig, axes = plt.subplots(1, 3, figsize=(13, 6), sharey=True)
    y = np.arange(len(t5))
    scale = np.where(t5["benchmark"].str.startswith("MT-Bench"), 10.0, 1.0)
    for ax, size in zip(axes, sizes):
        h, ll = t5[f"Hermes 3 {size}"] * scale, t5[f"Llama 3.1 Instruct {size}"] * scale
        ax.barh(y - 0.2, h, height=0.4, color="#4C72B0", label="Hermes 3 (report)")
        ax.barh(y + 0.2, ll, height=0.4, color="#999999", label="Llama 3.1 Instruct (report)")
        ax.set_title(f"{size}" + (" (FP8)" if size == "405B" else ""))
        ax.set_xlim(0, 100)
    axes[0].set_yticks(y, [b + (" (x10)" if b.startswith("MT-Bench") else "") for b in t5["benchmark"]])
    axes[0].invert_yaxis()
    _legend_outside(axes[-1])
    fig.suptitle("Report Table 5 (numbers from the Hermes 3 report)")
    fig.tight_layout()
    return _save(fig, path)


def plot_scores(acc, title: str, path=None):
    """Our accuracies with their 95% intervals, one group of bars per task and one bar per model:
    ``acc`` has one row per task and model, columns task, model, items, accuracy, ci95_low,
    ci95_high (``hermes3.eval.compare.accuracies``)."""
    tasks, models = list(dict.fromkeys(acc["task"])), list(dict.fromkeys(acc["model"]))
    items = acc.drop_duplicates("task").set_index("task")["items"]
    height = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(tasks) + 1.5))
    y = np.arange(len(tasks))
    for j, model in enumerate(models):
        m = acc[acc["model"] == model].set_index("task").loc[tasks]
        err = np.vstack([m["accuracy"] - m["ci95_low"], m["ci95_high"] - m["accuracy"]])
        ax.barh(y + (j - (len(models) - 1) / 2) * height, m["accuracy"], height=height, color=f"C{j}", label=model,
                xerr=err, error_kw={"capsize": 2, "lw": 0.8, "ecolor": "black"})
    ax.set_yticks(y, [f"{t} (n={items[t]})" for t in tasks])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy (error bars: 95% Wilson interval)")
    ax.set_title(title)
    _legend_outside(ax)
    fig.tight_layout()
    return _save(fig, path)


def plot_lr_search(scores, tasks: list[str], best: float, path=None, report_note: str = "", ylabel: str = "accuracy"):
    """Fig. 2 layout: one panel per task (x = learning rate, y = score), the selected LR
    as a red vertical line. Columns ``<task>_lo`` / ``<task>_hi`` in ``scores`` are drawn as
    95% intervals; ``report_note`` (the report's selection) is labelled "report"."""
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3.1), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        y = scores[task]
        if f"{task}_lo" in scores:
            err = np.vstack([y - scores[f"{task}_lo"], scores[f"{task}_hi"] - y])
            ax.errorbar(scores["lr"], y, yerr=err, marker="o", color="#4C72B0", capsize=3, label="ours (95% CI)")
        else:
            ax.plot(scores["lr"], y, marker="o", color="#4C72B0", label="ours")
        ax.axvline(best, color="red", lw=1, label=f"selected {best:g}")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(list(scores["lr"]), [f"{x:g}" for x in scores["lr"]], fontsize=7)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("learning rate")
    axes[0][0].set_ylabel(ylabel)
    _legend_outside(axes[0][-1])  # every panel has the same two entries
    fig.suptitle("LR sweep (ours)" + (f"; report: {report_note}" if report_note else ""), fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_loss_curves(curves: dict, path=None, *, smooth: int):
    """Fig. 4 layout: training loss vs step, one line per model size (a ``smooth``-step rolling
    mean over the raw per-step loss, drawn faintly). ``curves``: label -> metrics frame, or
    label -> ``{"metrics": frame, "heldout_loss": float}`` (the held-out loss goes in the legend)."""
    fig, ax = plt.subplots(figsize=(9, 3.6))  # wide enough for the plot and the legend beside it
    for k, (name, c) in enumerate(curves.items()):
        df = c["metrics"] if isinstance(c, dict) else c
        color = f"C{k}"
        ax.plot(df["step"], df["loss"], color=color, alpha=0.2, lw=0.8)
        label = name + (f" (held-out loss {c['heldout_loss']:.3f})" if isinstance(c, dict) and "heldout_loss" in c else "")
        ax.plot(df["step"], df["loss"].rolling(smooth, min_periods=1).mean(), color=color, label=label)
    ax.set_xlabel("Training Step")
    ax.set_ylabel("Loss")
    ax.set_title(f"SFT training loss (ours; {smooth}-step rolling mean); report Fig. 4: larger models lower", fontsize=9)
    _legend_outside(ax)
    fig.tight_layout()
    return _save(fig, path)


FIG5_SMOOTH = 5  # steps in Fig. 5's rolling mean of the training-pair series (a step logs few pairs: noisy)


def plot_reward_margins(metrics, path=None, heldout=None):
    """Fig. 5 layout, three panels: reward margin vs step (training pairs as a 5-step rolling
    mean, the held-out pairs of ``heldout`` as markers when given), chosen and rejected rewards,
    and reward accuracy (a tie counts half) on its own 0-1 axis, held-out markers beside the
    training line. Legends sit below their panels, off the data."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 3.9))
    roll = f"{FIG5_SMOOTH}-step rolling mean"
    smooth = lambda s: s.rolling(FIG5_SMOOTH, min_periods=1).mean()  # noqa: E731
    held = heldout is not None and len(heldout)
    a.plot(metrics["step"], smooth(metrics["rewards/margins"]), color="#4C72B0", label=f"training pairs ({roll})")
    if held:
        a.plot(heldout["step"], heldout["rewards/margins"], color="#C44E52", marker="o", ms=3, ls=":",
               label="held-out pairs")
    a.axhline(0, color="grey", lw=0.6)
    a.set_title("reward margin (chosen - rejected), ours; report Fig. 5: rises to ~4 at 8B", fontsize=9)
    a.set_ylabel("reward margin")
    b.plot(metrics["step"], smooth(metrics["rewards/chosen"]), label=f"chosen ({roll})")
    b.plot(metrics["step"], smooth(metrics["rewards/rejected"]), label=f"rejected ({roll})")
    b.axhline(0, color="grey", lw=0.6)
    b.set_title(f"rewards, training pairs ({roll})", fontsize=9)
    b.set_ylabel("reward")
    c.plot(metrics["step"], smooth(metrics["rewards/accuracies"]), color="#4C72B0", label=f"training pairs ({roll})")
    if held and "rewards/accuracies" in heldout:
        c.plot(heldout["step"], heldout["rewards/accuracies"], color="#C44E52", marker="o", ms=3, ls=":",
               label="held-out pairs")
    c.axhline(0.5, color="grey", lw=0.6, ls="--", label="0.5: chance, and a fresh adapter's ties")
    c.set_ylim(-0.05, 1.05)
    c.set_title("reward accuracy: margin > 0 (a tie counts half)", fontsize=9)
    c.set_ylabel("accuracy")
    for ax in (a, b, c):
        ax.set_xlabel("Training Step")
        _legend_below(ax)
    fig.tight_layout()
    return _save(fig, path)


def _legend_below(ax):
    """The legend under the axes (below the x label), so no line or marker hides behind it."""
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
