"""The README's "Use the guideline on your model" example runs as printed, and is ten lines or so."""
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Use the guideline on your model"


def example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert SECTION in text, f"the README lost its section {SECTION!r}"
    block = re.search(r"```python\n(.*?)```", text[text.index(SECTION):], re.S)
    assert block, f"no python block under {SECTION!r}"
    return block.group(1)


def test_the_guideline_example_runs_and_recommends_rates_inside_its_limits(capsys):
    code = example()
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    namespace = {}
    exec(compile(code, "README.md example", "exec"), namespace)
    plt.close("all")
    advice = namespace["advice"]
    assert 0 < advice.alpha < advice.alpha_max and 0 < advice.beta
    assert advice.beta <= 0.5 * float(advice.beta_critical(advice.alpha, "tasks")) * (1 + 1e-12)
    assert advice.beta <= 0.5 * float(advice.beta_critical(advice.alpha, "direct")) * (1 + 1e-9)
    assert np.isfinite(advice.table[["beta_c_tasks", "beta_c_direct"]].to_numpy()).all()
    assert "recommended α" in capsys.readouterr().out
