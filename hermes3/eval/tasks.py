"""The benchmark suites and stand-in groups (report Table 5, §5), and Nous' scoring rules.

``resolve_tasks`` turns a suite name or a list of tasks into lm-eval task names with their shot
counts; ``STANDIN_GROUPS`` maps each report group to the offline tasks that stand in for it at
demo scale (``hermes3.eval.evaluate`` describes them).
"""

from __future__ import annotations

from hermes3.core.errors import Hermes3Error

GPT4ALL = ("arc_challenge", "arc_easy", "boolq", "hellaswag", "openbookqa", "piqa", "winogrande")

# Table 5 rows that lm-eval covers, with the report's shot counts (MT-Bench is separate).
TABLE5_TASKS = {"agieval_nous": 0, "arc_challenge": 0, "arc_easy": 0, "boolq": 0, "leaderboard_bbh": 3,
                "leaderboard_gpqa": 0, "hellaswag": 10, "leaderboard_ifeval": 0, "leaderboard_math_hard": 4,
                "mmlu": 5, "leaderboard_mmlu_pro": 5, "leaderboard_musr": 0, "openbookqa": 0, "piqa": 0,
                "truthfulqa_mc2": 0, "winogrande": 5}

HUB_SUITES = {
    "gpt4all": {t: 0 for t in GPT4ALL},
    "agieval": {"agieval_nous": 0},
    "leaderboard": {"leaderboard_bbh": 3, "leaderboard_gpqa": 0, "leaderboard_ifeval": 0,
                    "leaderboard_math_hard": 4, "leaderboard_mmlu_pro": 5, "leaderboard_musr": 0},
    "table5": TABLE5_TASKS,
}

CATEGORY_TASKS = ("general", "domain_expert", "math", "roleplay", "coding", "tool_use", "content_generation",
                  "steering")

OFFLINE_TASKS = tuple(f"hermes_{c}" for c in CATEGORY_TASKS) + ("ifeval_local", "gsm8k_local", "agieval_local", "bbh_local")

# Seconds per task for the demo's SFT model on one thread of a 2-core host (each task alone,
# max_gen_toks 128): how hermes3.recipe.stages splits one evaluation into
# parts of equal time for parallel workers. Only the split depends on it, never a score.
TASK_SECONDS = {"hermes_general": 5.0, "hermes_domain_expert": 3.8, "hermes_math": 5.5, "hermes_roleplay": 9.2,
                "hermes_coding": 16.7, "hermes_tool_use": 17.1, "hermes_content_generation": 4.0,
                "hermes_steering": 8.2, "ifeval_local": 9.8, "gsm8k_local": 10.2, "agieval_local": 55.3}

STANDIN_GROUPS = {
    "gpt4all_standin": ("hermes_general", "hermes_domain_expert"),
    "agieval_standin": ("hermes_math", "hermes_coding", "gsm8k_local", "agieval_local"),
    "ifeval_standin": ("hermes_steering", "hermes_content_generation", "ifeval_local"),
    "mtbench_standin": ("hermes_roleplay", "hermes_tool_use"),
}

# The tasks of the four groups (every offline task but BBH): what Tables 2, 4 and 5 use at demo
# scale, so an epoch checkpoint scored for Table 2 is a cache hit when scored again as final/.
STANDIN_TASKS = tuple(t for t in OFFLINE_TASKS if any(t in g for g in STANDIN_GROUPS.values()))

def standin_categories(groups=tuple(STANDIN_GROUPS)) -> dict[str, list[str]]:
    """Each stand-in group's synthetic data categories (its ``hermes_*`` tasks): the held-out
    items whose reference log-likelihood scores the group where generation sits at the floor.

    >>> standin_categories(["gpt4all_standin", "mtbench_standin"])
    {'gpt4all_standin': ['general', 'domain_expert'], 'mtbench_standin': ['roleplay', 'tool_use']}
    """
    return {g: [t.removeprefix("hermes_") for t in STANDIN_GROUPS[g] if t.startswith("hermes_")] for g in groups}

PRIMARY_METRIC = {"ifeval_local": "prompt_level_strict_acc", "leaderboard_ifeval": "prompt_level_strict_acc"}

class EvalError(Hermes3Error):
    """A bad model path, task or suite, reported in one line."""

def primary_metric(task: str, metrics: list[str]) -> str:
    """Nous' rule: acc_norm where the task has it, else acc (else the first metric)."""
    if task in PRIMARY_METRIC:
        return PRIMARY_METRIC[task]
    for m in ("acc_norm", "acc", "exact_match", "prompt_level_strict_acc"):
        if m in metrics:
            return m
    return sorted(metrics)[0]

def gpt4all_average(scores: dict[str, dict[str, float]]) -> float:
    """Mean over the seven GPT4All tasks of acc_norm (where present) else acc.

    >>> round(gpt4all_average({t: {"acc": v} for t, v in zip(GPT4ALL, [65.10, 84.39, 88.29, 85.82, 49.20, 84.87, 79.24])}), 2)
    76.7
    """
    missing = [t for t in GPT4ALL if t not in scores]
    if missing:
        raise EvalError(f"GPT4All average needs all seven tasks; missing {missing}")
    return sum(scores[t][primary_metric(t, list(scores[t]))] for t in GPT4ALL) / len(GPT4ALL)

def resolve_tasks(suite: str | list[str]) -> tuple[dict[str, int | None], bool]:
    """``({task: num_fewshot}, needs_hub)`` for a suite name or a list of task names."""
    if isinstance(suite, str):
        if suite == "offline":
            return {t: 0 for t in OFFLINE_TASKS}, False
        if suite == "standins":
            return {t: 0 for t in STANDIN_TASKS}, False
        if suite in HUB_SUITES:
            return dict(HUB_SUITES[suite]), True
        if suite in STANDIN_GROUPS:
            return {t: 0 for t in STANDIN_GROUPS[suite]}, False
        raise EvalError(f"unknown suite {suite!r}; known: offline, standins, {', '.join(HUB_SUITES)}, "
                        f"{', '.join(STANDIN_GROUPS)}")
    tasks, hub = {}, False
    for t in suite:
        if t in OFFLINE_TASKS:
            tasks[t] = 0
        else:
            hub = True
            tasks[t] = TABLE5_TASKS.get(t)
    return tasks, hub
