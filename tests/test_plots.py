"""hermes3.recipe.plots on small frames: the axes, labels and data each figure draws, the report's values
labelled "report", intervals on our accuracies, legends clear of the data, and a PNG written where asked."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from hermes3.recipe import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    matplotlib.pyplot.close("all")


def _texts(fig) -> str:
    out = [fig._suptitle.get_text() if fig._suptitle else ""]
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        leg = ax.get_legend()
        if leg:
            out += [t.get_text() for t in leg.get_texts()]
    return " | ".join(out)


def _legend_outside(fig):
    """Every legend of ``fig`` overlaps none of its axes (drawn, so the extents are final)."""
    fig.canvas.draw()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends
    for leg in legends:
        box = leg.get_window_extent()
        assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes), box


def _acc(rows):
    """``compare.accuracies``-shaped frame from (task, model, items, accuracy, low, high)."""
    return pd.DataFrame(rows, columns=["task", "model", "items", "accuracy", "ci95_low", "ci95_high"])


def test_packing_figure3_lays_out_the_reports_cu_seqlens(tmp_path):
    fig = plots.plot_packing_figure3([11, 6, 7, 4, 8, 5, 3, 4, 3, 4, 5, 4], row_len=16, path=tmp_path / "f3.png")
    assert "[0, 11, 17, 24, 28, 36, 41, 44, 48, 51, 55, 60, 64]" in fig._suptitle.get_text()
    assert fig.axes[0].get_title() == "packed buffer, 64 tokens in 4x16"
    assert (tmp_path / "f3.png").stat().st_size > 1000


def test_packing_efficiency_draws_the_report_line():
    df = pd.DataFrame({"set": ["a", "a"], "packer": ["hermes3 bfd", "greedy"], "efficiency": [0.99, 0.9]})
    fig = plots.plot_packing_efficiency(df, 0.96)
    ax = fig.axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("report")]
    assert line.get_ydata()[0] == 0.96 and "report (Hermes 3): 96%" in _texts(fig)
    assert sorted(round(p.get_height(), 2) for p in ax.patches if p.get_height() > 0) == [0.9, 0.99]
    assert not ax.lines[:-1]  # the report line only: an exact ratio per set has no interval
    _legend_outside(fig)


def test_table1_bars_report_and_ours():
    df = pd.DataFrame({"category": ["Math", "Coding", "Total"], "report_%": [6.7, 4.5, 100.0],
                       "ours_%": [7.0, 4.0, 100.0], "ours_tokens": [70, 40, 1000]})
    fig = plots.plot_table1(df)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Math", "Coding"]
    widths = sorted(round(p.get_width(), 1) for p in ax.patches)
    assert widths == [4.0, 4.5, 6.7, 7.0]
    assert "report (Hermes 3, 390M tokens)" in _texts(fig) and "ours (1,000 tokens)" in _texts(fig)
    _legend_outside(fig)


def test_lr_search_panels_intervals_and_selection():
    scores = pd.DataFrame({"lr": [1e-4, 1e-3, 1e-2], "g": [-2.0, -1.0, -3.0], "g_lo": [-2.1, -1.1, -3.1],
                           "g_hi": [-1.9, -0.9, -2.9]})
    fig = plots.plot_lr_search(scores, ["g"], 1e-3, report_note="7e-6 selected for 8B", ylabel="log-prob")
    ax = fig.axes[0]
    assert ax.get_title() == "g" and ax.get_ylabel() == "log-prob" and ax.get_xscale() == "log"
    assert "report: 7e-6 selected for 8B" in fig._suptitle.get_text()
    (sel,) = [ln for ln in ax.get_lines() if ln.get_label() == "selected 0.001"]
    assert sel.get_xdata()[0] == 1e-3
    caps = [c for c in ax.containers if hasattr(c, "has_yerr") and c.has_yerr]
    assert caps and np.allclose(caps[0].lines[0].get_ydata(), [-2.0, -1.0, -3.0])
    _legend_outside(plots.plot_lr_search(scores, ["g", "g"], 1e-3))


def test_loss_curves_one_line_per_size_with_heldout_in_legend():
    m = pd.DataFrame({"step": [1, 2, 3], "loss": [3.0, 2.0, 1.0]})
    fig = plots.plot_loss_curves({"s": {"metrics": m, "heldout_loss": 1.5}, "l": m}, smooth=2)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["s (held-out loss 1.500)", "l"]
    smoothed = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "l"][0]
    assert list(smoothed.get_ydata()) == [3.0, 2.5, 1.5]
    assert "report Fig. 4" in fig.axes[0].get_title()
    _legend_outside(fig)


def test_reward_margins_train_and_heldout():
    """Fig. 5: margin, rewards and accuracy each on their own axis (accuracy 0-1, training and held-out
    together); every smoothed line says so; each legend sits below its axes, off the data."""
    m = pd.DataFrame({"step": [1, 2], "rewards/margins": [0.0, 1.0], "rewards/chosen": [0.0, 0.5],
                      "rewards/rejected": [0.0, -0.5], "rewards/accuracies": [0.5, 1.0]})
    held = pd.DataFrame({"step": [0, 2], "rewards/margins": [0.0, 0.8], "rewards/accuracies": [0.5, 0.75]})
    fig = plots.plot_reward_margins(m, heldout=held)
    a, b, c = fig.axes

    def line(ax, label):
        (ln,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
        return list(ln.get_ydata())

    assert line(a, "held-out pairs") == [0.0, 0.8] and "report Fig. 5" in a.get_title()
    assert line(a, "training pairs (5-step rolling mean)") == [0.0, 0.5]
    assert line(c, "held-out pairs") == [0.5, 0.75] and line(c, "training pairs (5-step rolling mean)") == [0.5, 0.75]
    assert c.get_ylim() == (-0.05, 1.05) and "accuracy" in c.get_ylabel() and "tie" in c.get_title()
    assert not any("accurac" in ln.get_label() for ax in (a, b) for ln in ax.get_lines())  # not on a reward axis
    for ax in (a, b, c):
        smoothed = [ln.get_label() for ln in ax.get_lines() if list(ln.get_xdata()) == m.step.tolist()]  # training
        assert smoothed and all("5-step rolling mean" in lab for lab in smoothed), smoothed
    fig.canvas.draw()
    for ax in (a, b, c):  # the legend box lies below the axes box
        assert ax.get_legend().get_window_extent().y1 < ax.get_window_extent().y0
    fig = plots.plot_reward_margins(m, heldout=held[["step", "rewards/margins"]])  # an older heldout.csv
    assert line(fig.axes[2], "training pairs (5-step rolling mean)") == [0.5, 0.75]


def test_table5_report_figure_is_labelled_and_scales_mt_bench():
    t5 = pd.DataFrame({"benchmark": ["ARC", "MT-Bench Avg."], **{f"{m} {s}": [50.0, 8.0] for m in (
        "Hermes 3", "Llama 3.1 Instruct") for s in ("8B", "70B", "405B")}})
    fig = plots.plot_table5(t5)
    assert "numbers from the Hermes 3 report" in fig._suptitle.get_text()
    assert sorted({round(p.get_width()) for p in fig.axes[0].patches}) == [50, 80]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["ARC", "MT-Bench Avg. (x10)"]
    assert "Hermes 3 (report)" in _texts(fig) and "Llama 3.1 Instruct (report)" in _texts(fig)
    assert not any(ax.lines or ax.collections for ax in fig.axes)  # the report gives no intervals: none drawn
    _legend_outside(fig)


def test_scores_draw_each_accuracy_with_its_interval(tmp_path):
    acc = _acc([("g1", "base", 10, 0.8, 0.4902, 0.9433), ("g2", "base", 20, 0.0, 0.0, 0.1611),
                ("g1", "SFT", 10, 0.5, 0.2366, 0.7634), ("g2", "SFT", 20, 0.25, 0.1119, 0.4687)])
    fig = plots.plot_scores(acc, "groups", path=tmp_path / "s.png")
    ax = fig.axes[0]
    assert ax.get_title() == "groups" and ax.get_xlim() == (0, 1) and "95% Wilson" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["g1 (n=10)", "g2 (n=20)"]
    bar_sets = [c for c in ax.containers if isinstance(c, matplotlib.container.BarContainer)]
    assert len(bar_sets) == 2
    for bars, model in zip(bar_sets, ["base", "SFT"]):
        m = acc[acc.model == model]
        assert bars.get_label() == model and [p.get_width() for p in bars.patches] == list(m.accuracy)
        (segments,) = [c.get_segments() for c in bars.errorbar.lines[2]]  # one horizontal segment per bar
        assert np.allclose([(s[0][0], s[1][0]) for s in segments], m[["ci95_low", "ci95_high"]].to_numpy())
        assert np.allclose([s[0][1] for s in segments], [p.get_y() + p.get_height() / 2 for p in bars.patches])
    _legend_outside(fig)
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_histograms_and_category_lengths():
    fig = plots.plot_length_histograms({"a": [10, 20, 5000], "b": [1, 2]}, 8192)
    assert [ax.get_title() for ax in fig.axes] == ["a (n=3)", "b (n=2)"]
    fig = plots.plot_category_lengths([{"category": "math", "tokens": 10}, {"category": "coding", "tokens": 30}])
    assert fig.axes[0].get_yscale() == "log"
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["math", "coding"]
