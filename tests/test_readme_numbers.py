"""Every result the README quotes is read from the JSON a notebook wrote beside its figures.

A quoted number carries its source in an HTML comment right after it, invisible on GitHub:
``**2.5**<!-- 03_sinusoid.json: claim/sgd/finite/median -->`` (a path of keys, '/'-separated;
``×100`` after the path for a percentage; ``±50%`` for a number that varies from run to run, such
as a time). The test finds every such pair, reads the value and checks that the README shows it
to the precision it prints (half a unit of its last digit), or within the stated tolerance.
"""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUOTE = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:%|×)?\**\s*<!--\s*([\w.-]+\.json):\s*([^<>]*?)\s*(?:×(\d+))?\s*"
                   r"(?:±(\d+)%)?\s*-->")


def quotes():
    return QUOTE.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def value_at(document, path: str):
    for key in path.split("/"):
        document = document[int(key)] if isinstance(document, list) else document[key]
    return document


def test_the_readme_quotes_results_from_json():
    assert len(quotes()) >= 10, "the README should quote its results through JSON references"


@pytest.mark.parametrize("shown, name, path, scale, tolerance", quotes(), ids=lambda v: str(v)[:40])
def test_a_quoted_number_equals_its_json_source(shown, name, path, scale, tolerance):
    source = ROOT / "figures" / name
    assert source.exists(), f"README quotes {name}, which no notebook wrote to figures/"
    value = float(value_at(json.loads(source.read_text(encoding="utf-8")), path)) * (int(scale) if scale else 1)
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    allowed = abs(value) * int(tolerance) / 100 if tolerance else 0.5 * 10 ** -decimals + 1e-12
    assert abs(float(shown) - value) <= allowed, (
        f"README shows {shown} for {name}: {path}, which holds {value}")
