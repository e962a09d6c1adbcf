"""README.md is README.template.md rendered from figures/*.json, and the renderer does what it says."""
import json
import re

import pytest

from mamlpaper import readme


def test_the_committed_readme_is_its_template_rendered_from_the_committed_json():
    for path, text in readme.render_files().items():
        assert path.read_bytes() == text.encode("utf-8"), (
            f"{path.name} differs from its template rendered with figures/*.json: run make readme")


def test_the_readme_quotes_its_results_through_placeholders():
    template = (readme.ROOT / "README.template.md").read_text(encoding="utf-8")
    assert len(re.findall(r"\{\{", template)) >= 50, "the README should quote its results through placeholders"
    assert not re.search(r"<!--\s*[\w.-]+\.json:", template), "an old hand-typed <!-- file.json: key --> reference"


@pytest.fixture
def figures(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({
        "verdict": {"ratio": 1.241857812073484, "low": 1.0, "high": None, "seeds": 10, "word": "undecided"},
        "fraction": 0.9531,
        "runs": [375, 294, 290],
        "agreement": {"a vs x": {"mean": 1.0, "min": 0.99, "max": 1.0},
                      "a vs y": {"mean": 0.5, "min": 0.4, "max": None},
                      "b vs x": {"mean": 0.25, "min": 0.2, "max": 0.3},
                      "b vs y": {"mean": 0.75, "min": 0.7, "max": 0.8}},
        "table": {"lr": [{"alpha": 1e-05, "beta": 0.1318}, {"alpha": 0.04, "beta": 5.666e-11}]},
        "seconds": {"search: runs": 204.6},
    }), encoding="utf-8")
    return tmp_path


def render(text, figures):
    return readme.render(text, figures, "t.md")


@pytest.mark.parametrize("placeholder, shown", [
    ("{{ r.json : verdict/ratio : .2f }}", "1.24"),
    ("{{ r.json : verdict/seeds : d }}", "10"),
    ("{{ r.json : verdict/word : s }}", "undecided"),
    ("{{ r.json : fraction : ×100 .1f }} %", "95.3 %"),
    ("{{ r.json : fraction : ×1000 .0f }} ms", "953 ms"),
    ("{{ r.json : runs/1 : d }}", "294"),
    ("{{ r.json : seconds/search: runs : .0f }}", "205"),
    ("{{ r.json : table/lr/0/alpha : sig3 }}", "0.00001"),
    ("{{ r.json : table/lr/0/beta : sig3 }}", "0.132"),
    ("{{ r.json : table/lr/1/beta : sig2 }}", "0.000000000057"),
    ("{{ r.json : runs/0 : sig2 }}", "380"),
    ("{{ r.json : verdict/high : .2f }}", "—"),
    ("{{ r.json : verdict/high : .2f | above the searched range }}", "above the searched range"),
    ("{{ r.json\n  : verdict/low : .1f }}", "1.0"),
])
def test_a_placeholder_renders_its_value_under_its_format(figures, placeholder, shown):
    assert render(f"R = {placeholder}.\n", figures) == f"R = {shown}.\n"


def test_comments_vanish_with_their_line_break(figures):
    assert render("{# about\nthis #}\nR = {{ r.json : verdict/ratio : .1f }}\n", figures) == "R = 1.2\n"


def test_a_table_block_renders_rows_by_columns_with_one_cell_pattern(figures):
    template = """before
{{ table r.json : agreement/{row} vs {column}
corner = variant
column x = model x
column y = model y (α = 1)
row a = `a`
row b = `b`
cell = {mean : ×100 .0f} % ({min : ×100 .0f}–{max : ×100 .0f | ?})
bold a = x
}}
after
"""
    assert render(template, figures) == """before
| variant | model x | model y (α = 1) |
|---|---|---|
| `a` | **100 % (99–100)** | 50 % (40–?) |
| `b` | 25 % (20–30) | 75 % (70–80) |
after
"""


def test_a_table_over_list_items_without_row_and_column_in_its_path(figures):
    template = "{{ table r.json : table\ncolumn alpha = α\ncolumn beta = β\nrow lr/1 = LR\nrow lr/0 = LR\n" \
               "cell = {sig3}\n}}"
    assert render(template, figures).split("\n") == [
        "|  | α | β |", "|---|---|---|", "| LR | 0.04 | 0.0000000000567 |", "| LR | 0.00001 | 0.132 |"]


def test_a_benchmark_result_is_read_from_benchmarks_results_and_no_other_folder(tmp_path):
    figures = tmp_path / "figures"
    figures.mkdir()
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "scaling.json").write_text('{"speedup": 1.874}')
    (tmp_path / "secret.json").write_text('{"speedup": 9}')
    assert render("{{ benchmarks/results/scaling.json : speedup : .2f }}×", figures) == "1.87×"
    for file in ("../secret.json", "benchmarks/results/../../secret.json", "benchmarks/secret.json"):
        with pytest.raises(ValueError, match=r"is not allowed; name a JSON file in .* or benchmarks/results/NAME.json"):
            render(f"{{{{ {file} : speedup : .2f }}}}", figures)


@pytest.mark.parametrize("template, message", [
    ("text\n\nR = {{ r.json : verdict/ratoi : .2f }}\n",
     "t.md:3: {{ r.json : verdict/ratoi : .2f }}: key 'ratoi' is not allowed at verdict; keys there: 'ratio', "),
    ("x\n{{ nope.json : verdict/ratio : .2f }}",
     "t.md:2: {{ nope.json : verdict/ratio : .2f }}: file 'nope.json' is not allowed; name a JSON file in"),
    ("{{ r.json : runs/3 : d }}",
     "t.md:1: {{ r.json : runs/3 : d }}: key '3' is not allowed at runs; keys there: an index below 3"),
    ("{{ r.json : verdict/ratio : d }}",
     "t.md:1: {{ r.json : verdict/ratio : d }}: format 'd' is not allowed for 1.24"),
    ("{{ r.json : verdict : .2f }}", "t.md:1: {{ r.json : verdict : .2f }}: value dict is not allowed"),
    ("{{ r.json : verdict/word : ×100 .0f }}", "value 'undecided' is not allowed under ×100"),
    ("{{ r.json : verdict/ratio }}", "t.md:1: {{ r.json : verdict/ratio }}: placeholder"),
    ("a\n{{ table r.json : agreement\nrow a = A\ncell = {.1f}\n}}",
     "t.md:2: {{ table r.json : agreement }}: a table needs"),
    ("{{ table r.json : agreement\nrows a = A\n}}", "table line 'rows a = A' is not allowed"),
    ("a\nb {{ r.json : verdict/ratio : .2f }\n", "t.md:2: '{{' is not allowed without its closing"),
])
def test_bad_templates_fail_with_one_line_naming_the_placeholder_and_its_line(figures, template, message):
    with pytest.raises(ValueError) as error:
        render(template, figures)
    assert message in str(error.value) and "\n" not in str(error.value)
