"""hermes3.core.config.describe: every field, its default and its help text, one line each."""

from dataclasses import dataclass, field

from hermes3.core.config import describe


@dataclass
class Toy:
    """A stage config as the library writes them."""

    name: str = field(default="run", metadata={"help": "run name"})
    lr: float = field(default=7e-6, metadata={"help": "peak learning rate (report: 7e-6)"})
    ranks: dict = field(default_factory=dict, metadata={"help": "source -> rank"})
    tags: list = field(default_factory=lambda: ["a", "b"])
    seed: int = 0


def test_describe_exact_text():
    assert describe(Toy) == (
        "  name = 'run': run name\n"
        "  lr = 7e-06: peak learning rate (report: 7e-6)\n"
        "  ranks = {}: source -> rank\n"
        "  tags = ['a', 'b']: \n"
        "  seed = 0: ")


def test_describe_real_stage_configs():
    from hermes3.data.filters import FilterConfig
    from hermes3.train.dpo import DPOConfig

    lines = describe(DPOConfig).splitlines()
    assert lines[0] == "  name = 'dpo': run name; output in runs/dpo/<name> unless output_dir is set"
    assert "  beta = 0.1: DPO beta (not in the report: TRL default 0.1)" in lines
    assert "  lora_r = 32: LoRA rank (report: 32)" in lines
    import dataclasses

    assert len(lines) == len(dataclasses.fields(DPOConfig)) == 32  # one per field
    assert describe(FilterConfig).splitlines()[2] == (
        "  source_ranks = {}: source name -> rank, lower is stronger; duplicates keep the best-ranked copy "
        "(unknown sources rank last)")
