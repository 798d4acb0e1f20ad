"""hermes3.recipe.notebook: the tables notebooks display print counts as integers."""

from hermes3.recipe.notebook import rounded, row_table


def test_row_table_keeps_counts_integer_beside_floats():
    t = row_table({"tiny-s": {"parameters": 1412224, "steps": 146, "loss": 1.39151, "items": 640},
                   "tiny-m": {"parameters": 4963584, "steps": 146, "loss": 1.28642, "items": 640}})
    assert [str(t[c].dtype) for c in t.columns] == ["int64", "int64", "float64", "int64"]
    shown = rounded(t).to_string()
    assert "4963584" in shown and "4963584.0" not in shown and "640.0" not in shown and "1.2864" in shown
