"""Render README.md from README.template.md and the results JSON the notebooks write to figures/.

Why: every number the README quotes is measured by a notebook; typed by hand it drifts from the
measurement. The template says where each number lives; ``make readme`` (also the last step of
``make figures``) renders it, and ``tests/test_readme.py`` fails while the committed README is stale.

Template syntax (also at the head of README.template.md):

``{{ FILE : PATH : FORMAT }}``
    One value. FILE: a JSON file in figures/, or ``benchmarks/results/NAME.json``. PATH: its keys
    joined by ``/``; an integer indexes a list (keys may hold ``:`` and spaces, not ``/`` or ``|``). FORMAT: a Python format spec (``.2f``,
    ``d``, ``g``, ``s``) or ``sigN``, N significant digits never with an exponent and without
    trailing zeros (``sig3``: 1e-05 -> 0.00001, 0.03295 -> 0.033); ``×100`` before it scales a
    fraction to a percentage (the template writes the ``%`` sign), ``×1000`` seconds to milliseconds.
``{{ FILE : PATH : FORMAT | TEXT }}``
    TEXT where the value is JSON null, which is what a notebook writes for what is not a number
    (NaN, an undetermined ratio, a censored bound: ``| above the searched range``); without
    ``| TEXT`` null renders as ``—``.
``{{ table FILE : PATH`` + lines + ``}}`` on a line of its own
    A Markdown table; one item per line: ``corner = TEXT`` (header of the label column),
    ``column KEY = HEADER``, ``row KEY = LABEL`` (in the order written), ``cell = PATTERN``,
    ``bold ROW = COLUMN``. The cell (ROW, COLUMN) is the value at PATH with ``{row}`` and
    ``{column}`` replaced by the keys, or at PATH/ROW/COLUMN when PATH names neither. PATTERN is
    text with ``{FORMAT}`` for that value or ``{SUBPATH : FORMAT}`` for one below it, each
    optionally with ``| TEXT``: ``cell = {mean : ×100 .1f} % ({min : ×100 .1f}–{max : ×100 .1f})``.
``{# ... #}``
    A comment, not rendered (nor the line break right after it).

A missing file or key, a value the format refuses or an unclosed ``{{`` raises one ValueError line
naming the template, the line and the placeholder. The output depends on the template and the JSON
only.
"""
from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

from .atomic import write_bytes

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures"
TEMPLATES = {"README.template.md": "README.md"}
NULL = "—"
SCALE = re.compile(r"×(100|1000)\s")
"""``×100`` (a fraction as a percentage) or ``×1000`` (seconds as milliseconds) before a format."""

_TOKEN = re.compile(r"\{#.*?#\}\n?|\{\{(.*?)\}\}(?!\})", re.S)
_CELL = re.compile(r"\{([^{}]*)\}")
_IS_TABLE = re.compile(r"\s*table\s")
_SIG = re.compile(r"sig([1-9][0-9]?)")


def header(template: str) -> str:
    """The first line of a rendered file: where it comes from, so nobody edits the output."""
    return f"<!-- generated from {template} by `make readme`; edit the template -->\n"


def render(template: str, figures: Path = FIGURES, name: str = "template") -> str:
    """``template`` with every placeholder replaced and every comment removed."""
    documents: dict[str, object] = {}
    pieces, end = [], 0
    for match in [*_TOKEN.finditer(template), None]:
        text = template[end:match.start() if match else len(template)]
        for opening in ("{{", "{#"):
            if opening in text:
                line = template.count("\n", 0, end + text.index(opening)) + 1
                raise ValueError(f"{name}:{line}: {opening!r} is not allowed without its closing; "
                                 "write {{ FILE : PATH : FORMAT }} or a {# comment #}")
        pieces.append(text)
        if match is None:
            break
        end = match.end()
        body = match.group(1)
        if body is None:
            continue
        try:
            pieces.append(_table(body, figures, documents) if _IS_TABLE.match(body)
                          else _value(body, figures, documents))
        except ValueError as error:
            line = template.count("\n", 0, match.start()) + 1
            shown = " ".join(body.split("\n", 1)[0].split())
            raise ValueError(f"{name}:{line}: {{{{ {shown} }}}}: {error}") from None
    return "".join(pieces)


def _value(body: str, figures: Path, documents: dict) -> str:
    spec, null = _null_text(body)
    file, rest = (part.strip() for part in _split(spec, ":", "FILE : PATH : FORMAT"))
    path, fmt = (part.strip() for part in _split(rest, ":", "FILE : PATH : FORMAT", last=True))
    return format_value(lookup(_document(file, figures, documents), path), fmt, null)


def _table(body: str, figures: Path, documents: dict) -> str:
    first, *lines = body.strip().split("\n")
    file, path = (part.strip() for part in _split(first[len("table"):], ":", "table FILE : PATH"))
    document = _document(file, figures, documents)
    if "{row}" not in path and "{column}" not in path:
        path += "/{row}/{column}"
    single = {"corner": "", "cell": ""}
    keyed = {"row": {}, "column": {}}
    bold = set()
    for item in filter(None, (line.strip() for line in lines)):
        kind, _, rest = item.partition(" ")
        key, equals, text = (part.strip() for part in rest.partition("="))
        if kind in single and equals and not key:
            single[kind] = text
        elif kind in keyed and equals and key:
            keyed[kind][key] = text
        elif kind == "bold" and equals and key:
            bold.add((key, text))
        else:
            raise ValueError(f"table line {item!r} is not allowed; write corner = TEXT, column KEY = HEADER, "
                             "row KEY = LABEL, cell = PATTERN or bold ROW = COLUMN")
    if not (keyed["row"] and keyed["column"] and single["cell"]):
        raise ValueError("a table needs a row KEY = LABEL, a column KEY = HEADER and a cell = PATTERN line")
    grid = [[single["corner"], *keyed["column"].values()]]
    for row, label in keyed["row"].items():
        cells = [label]
        for column in keyed["column"]:
            value = lookup(document, path.replace("{row}", row).replace("{column}", column))
            text = _CELL.sub(lambda match: _cell(value, match.group(1)), single["cell"])
            cells.append(f"**{text}**" if (row, column) in bold else text)
        grid.append(cells)
    rows = ["| " + " | ".join(cells) + " |" for cells in grid]
    return "\n".join([rows[0], "|" + "---|" * len(grid[0]), *rows[1:]])


def _cell(value, piece: str) -> str:
    spec, null = _null_text(piece)
    if ":" in spec:
        path, fmt = (part.strip() for part in spec.rsplit(":", 1))
        value = lookup(value, path)
    else:
        fmt = spec.strip()
    return format_value(value, fmt, null)


def _null_text(spec: str) -> tuple[str, str]:
    spec, bar, text = spec.partition("|")
    return spec, text.strip() if bar else NULL


def _split(text: str, separator: str, expected: str, last: bool = False) -> list[str]:
    parts = text.rsplit(separator, 1) if last else text.split(separator, 1)
    if len(parts) != 2:
        raise ValueError(f"placeholder {text.strip()!r} is not allowed; write {{{{ {expected} }}}}")
    return parts


BENCHMARKS = "benchmarks/results/"
"""The one other folder a FILE may name (``benchmarks/results/NAME.json``): what the benchmarks measure."""


def _document(file: str, figures: Path, documents: dict):
    if file not in documents:
        benchmark = re.fullmatch(re.escape(BENCHMARKS) + r"[A-Za-z0-9_.-]+\.json", file) is not None
        source = Path(figures).parent / file if benchmark else Path(figures) / file
        if ("/" in file and not benchmark) or not file.endswith(".json") or not source.is_file():
            found = ", ".join(sorted(p.name for p in Path(figures).glob("*.json")))
            raise ValueError(f"file {file!r} is not allowed; name a JSON file in {figures} ({found}) "
                             f"or {BENCHMARKS}NAME.json")
        documents[file] = json.loads(source.read_text(encoding="utf-8"))
    return documents[file]


def lookup(document, path: str):
    """The value at ``path`` (keys joined by ``/``; an integer indexes a list)."""
    value, walked = document, []
    for key in path.split("/"):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            where = "/".join(walked) or "the top level"
            allowed = (", ".join(map(repr, value)) if isinstance(value, dict)
                       else f"an index below {len(value)}" if isinstance(value, list) else "none: it is a value")
            raise ValueError(f"key {key!r} is not allowed at {where}; keys there: {allowed}")
        walked.append(key)
    return value


def format_value(value, fmt: str, null: str = NULL) -> str:
    """``value`` under ``fmt`` (a Python format spec or ``sigN``, optionally after ``×100`` or ``×1000``)."""
    if value is None:
        return null
    if isinstance(value, (dict, list)):
        raise ValueError(f"value {type(value).__name__} is not allowed; the path must end at a number or text")
    spec = fmt
    scale = SCALE.match(spec + " ")
    if scale:
        value, spec = _number(value, scale.group(0).strip()) * int(scale.group(1)), spec[scale.end():].strip()
    sig = _SIG.fullmatch(spec)
    if sig:
        rounded = format(_number(value, spec), f".{int(sig.group(1)) - 1}e")
        return format(Decimal(rounded).normalize(), "f")
    try:
        return format(value, spec)
    except (ValueError, TypeError) as error:
        raise ValueError(f"format {fmt!r} is not allowed for {value!r}: {error}") from None


def _number(value, fmt: str):
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"value {value!r} is not allowed under {fmt}; it formats numbers")
    return value


def render_files(root: Path = ROOT, figures: Path = FIGURES) -> dict[Path, str]:
    """Every output file (README.md) and the text it should hold."""
    return {Path(root) / output: header(template) + render(
        (Path(root) / template).read_text(encoding="utf-8"), figures, template)
        for template, output in TEMPLATES.items()}


def main() -> None:
    for path, text in render_files().items():
        write_bytes(path, text.encode("utf-8"))
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
