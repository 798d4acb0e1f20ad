"""The notebooks' prose states no number: computed numbers are printed by code cells.

The rule, kept simple so that a reader can check it by eye: a markdown cell of ``notebooks/NN_*.py``
contains no standalone number, except the report's own: in the **Reproduces:** paragraph and in a
sentence that names the report. Not numbers: names that contain digits (Table 2, Fig. 5, §3,
notebook 05, arXiv ids, Llama 3.1, Hermes 3, 8B, FP8, GSM8K, bf16, 13-gram), code in backticks,
and constants of the method: the 95% level of every interval, the report's 8192-token row, 0/1 scores.
"""

import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.py"))
ALLOWED = [r"`[^`]*`", r"\b(?:Tables?|Figs?\.|Figures?|notebooks?)\s+\d+(?:\s*(?:,|and|-|–)\s*\d+)*",
           r"§\s*\d+(?:\.\d+)*", r"arXiv:\d+\.\d+", r"\bLlama\s+3(?:\.1)?\b", r"\bHermes\s+3\b", r"\b\d+-(?:gram|word)s?\b",
           r"^#\s+\d\d\s+·", r"\b0/1\b", r"\b95%", r"\b8192\b"]
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*%?(?![\w])")


def prose(source: str) -> list[tuple[int, str]]:
    """``(line number, sentence)`` of the markdown cells, without the Reproduces paragraph and
    the sentences that name the report."""
    out, in_md, reproduces, para = [], False, False, []

    def flush():
        text = " ".join(t for _, t in para)
        for pattern in ALLOWED:  # names first: "Fig. 4" must not end a sentence
            text = re.sub(pattern, "<name>", text)
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            if sentence and "report" not in sentence.lower():
                out.append((para[0][0], sentence))
        para.clear()

    for n, line in enumerate(source.splitlines(), 1):
        if line.startswith("# %%"):
            flush()
            in_md, reproduces = "[markdown]" in line, False
            continue
        if not in_md:
            continue
        text = line.removeprefix("#").strip()
        if text.startswith("**Reproduces:**"):
            reproduces = True
        elif not text or text.startswith(("**", "#")):
            reproduces = False
        if not text or text.startswith("#"):
            flush()
        if not reproduces and text:
            para.append((n, text))
            if text.startswith("#"):
                flush()
    flush()
    return out


def numbers(text: str) -> list[str]:
    for pattern in ALLOWED:
        text = re.sub(pattern, " ", text)
    return NUMBER.findall(text)


def test_rule_on_a_hand_made_cell():
    src = "# %% [markdown]\n# # 05 · Epochs\n#\n# **Reproduces:** Table 2, epoch 3 (Total 83.89).\n#\n" \
          "# **Here:** Fig. 4 at 8B on GSM8K, `final_steps`, 95% intervals. The report's epoch 3 won.\n" \
          "# Ours: raised to 30%.\n# %%\nx = 30\n"
    assert [(n, numbers(t)) for n, t in prose(src) if numbers(t)] == [(6, ["30%"])]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_markdown_states_no_number(notebook):
    bad = [f"{notebook.name}:{n}: {numbers(t)} in {t!r}" for n, t in prose(notebook.read_text()) if numbers(t)]
    assert not bad, "numbers typed in prose (print them from code instead):\n" + "\n".join(bad)
