"""The README's gallery is the table `make demo` wrote from its manifest, not hand-typed numbers."""

import re

from conftest import ROOT
from hermes3.recipe.gallery import END, START, replace_block


def test_readme_gallery_is_the_committed_demo_output():
    readme = (ROOT / "README.md").read_text()
    block = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), readme, re.DOTALL).group(1)
    assert block.strip() == (ROOT / "figures" / "gallery.md").read_text().strip()
    assert "report" in block and "p=" in block  # each finding carries its statistic


def test_replace_block_keeps_the_rest_of_the_text():
    text = f"intro\n{START}\nold table\n{END}\nrest"
    assert replace_block(text, "| a |\n| b |\n") == f"intro\n{START}\n| a |\n| b |\n{END}\nrest"
