"""Execute the Jupytext notebooks with papermill: what ``make figures`` and the smoke tests call.

An executed notebook is written only when it succeeds (temporary file, then rename), so a
make target that exists is a notebook that ran to the end. A failure leaves the executed
notebook beside it as ``<name>.failed.ipynb`` and a one-line ``<name>.error`` that
``summary`` gathers into the closing report of ``make figures``. A notebook whose data is
not there stops in its first cell with the data's ``DataMissing`` message: that is a skip, not
a failure (``<name>.skipped``), so a newcomer without MiniImagenet gets every other figure.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

from . import _checks
from .atomic import atomic_path
from .runtime import REPO_ROOT, check_profile


def default_figures_dir(profile: str) -> str:
    """The committed figures come from the default profile; other profiles write beside them."""
    check_profile(profile)
    return "figures" if profile == "default" else f"build/{profile}/figures"


SKIPPING_ERRORS = ("DataMissing",)
"""Exception names (the notebook's kernel raised them) that mean "skipped", not "failed"."""


class NotebookSkipped(RuntimeError):
    """The notebook stopped because its data is missing; the message says how to get it."""


def _error_line(exc: BaseException) -> str:
    """papermill wraps the kernel's exception; keep its last meaningful line."""
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    line = f"{ename}: {evalue}".strip().splitlines()
    return line[-1] if line else ename


def convert(notebook: str | Path, output: str | Path) -> Path:
    """Write the .ipynb of a percent-format notebook, with the kernel papermill needs to know."""
    import jupytext

    nb = jupytext.read(notebook)
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python"}
    jupytext.write(nb, output, fmt="ipynb")
    return Path(output)


def _ipc_transport(directory: str):
    """Kernel sockets as files in a private folder: over TCP, ipykernel warns once per notebook
    that its traffic could be read by anyone on the machine, which buries make's summary."""
    from traitlets.config import Config

    return Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(directory, "kernel")}})


def execute(notebook: str | Path, output: str | Path, parameters: dict | None = None, progress: bool = False) -> Path:
    """Run one percent-format notebook with ``parameters`` into ``output`` (.ipynb)."""
    import papermill

    notebook, output = Path(notebook), Path(output)
    if notebook.suffix != ".py" or not notebook.is_file():
        raise _checks.refuse("notebook", str(notebook), "notebook must be an existing Jupytext .py file")
    if output.suffix != ".ipynb":
        raise _checks.refuse("output", str(output), "output must end in .ipynb")
    if parameters is not None and not isinstance(parameters, dict):
        raise _checks.refuse("parameters", parameters, "parameters must be a dict of papermill parameters")
    parameters = dict(parameters or {})
    check_profile(parameters.get("profile", "default"))
    output.parent.mkdir(parents=True, exist_ok=True)
    source = output.with_name(f".{output.stem}.source.ipynb")
    failed = output.with_name(f"{output.stem}.failed.ipynb")
    error = output.with_name(f"{output.stem}.error")
    skipped = output.with_name(f"{output.stem}.skipped")
    for stale in (failed, error, skipped):
        stale.unlink(missing_ok=True)
    convert(notebook, source)
    try:
        with atomic_path(output) as partial, warnings.catch_warnings(), tempfile.TemporaryDirectory() as sockets:
            warnings.filterwarnings("ignore", message="The specified file", category=UserWarning)
            try:
                papermill.execute_notebook(
                    str(source), str(partial), parameters=parameters, kernel_name="python3",
                    cwd=str(REPO_ROOT), progress_bar=progress, config=_ipc_transport(sockets),
                )
            except BaseException as exc:
                if getattr(exc, "ename", None) in SKIPPING_ERRORS:
                    skipped.write_text(f"{notebook.name}: {getattr(exc, 'evalue', '')}\n")
                    raise NotebookSkipped(f"{notebook.name} skipped: {getattr(exc, 'evalue', '')}") from None
                if partial.stat().st_size:
                    os.replace(partial, failed)
                error.write_text(f"{notebook.name}: {_error_line(exc)}\n")
                raise
    finally:
        source.unlink(missing_ok=True)
    return output


def takes_parameter(notebook: str | Path, name: str) -> bool:
    """Whether the notebook's parameters cell declares ``name`` (papermill warns of any other)."""
    text = Path(notebook).read_text()
    cell = re.search(r'^# %% tags=\["parameters"\]\n(.*?)(?=^# %%)', text, flags=re.M | re.S)
    return cell is not None and re.search(rf"^{re.escape(name)}\s*[:=]", cell.group(1), flags=re.M) is not None


def summary(build_dir: str | Path) -> int:
    """Print what failed or was skipped in a build directory; the exit status for ``make figures``
    (non-zero only for failures: a skip for missing data is reported, not fatal)."""
    errors = sorted(Path(build_dir).glob("*.error"))
    skips = sorted(Path(build_dir).glob("*.skipped"))
    done = sorted(p for p in Path(build_dir).glob("*.ipynb") if not p.name.endswith(".failed.ipynb"))
    print(f"\n{len(done)} notebook(s) executed in {build_dir}, {len(errors)} failed, {len(skips)} skipped.")
    for e in errors:
        print(f"  FAILED {e.read_text().strip()}")
        print(f"         executed copy: {e.with_suffix('.failed.ipynb')}")
    for skip in skips:
        name, _, reason = skip.read_text().strip().partition(": ")
        print(f"  skipped {name} (data missing: {reason})")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mamlpaper.pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute one notebook")
    run.add_argument("notebook")
    run.add_argument("output")
    run.add_argument("--profile", default="default")
    run.add_argument("--figures-dir", default=None)
    run.add_argument("--executor", default="", help="where sweeps run their chunks, for notebooks with an "
                     "executor parameter: '', processes:N or a Dask scheduler address (make's DASK_SCHEDULER)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="extra papermill parameter (value parsed as YAML, like papermill -p)")
    report = sub.add_parser("summary", help="report failed notebooks of a build directory")
    report.add_argument("build_dir")
    args = parser.parse_args(argv)
    if args.command == "summary":
        return summary(args.build_dir)
    import yaml

    parameters = {"profile": check_profile(args.profile),
                  "figures_dir": args.figures_dir or default_figures_dir(args.profile)}
    if args.executor and takes_parameter(args.notebook, "executor"):
        parameters["executor"] = args.executor
    parameters.update({name: yaml.safe_load(value) for name, value in args.parameter})
    try:
        execute(args.notebook, args.output, parameters, progress=sys.stderr.isatty())
    except NotebookSkipped as skip:
        print(skip, file=sys.stderr)
        return 0
    except Exception:
        error = Path(args.output).with_name(f"{Path(args.output).stem}.error")
        print(error.read_text().strip() if error.exists() else traceback.format_exc(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
