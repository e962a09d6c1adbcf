"""Every notebook runs end to end under papermill (profile=smoke) and writes its figures.

The few-shot notebooks read their data from ``$MAMLPAPER_DATA``: 04 runs on the real Omniglot
subset (skipped where it is not), 05 on a synthetic MiniImagenet built in the pickle layout, and
without MiniImagenet 05 is reported as skipped, not failed.
"""
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from mamlpaper import pipeline, stability
from mamlpaper.runtime import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9]*.py"))
FIGURES = {
    "01_derivation": ["fig2_beta_critical", "appendix_d_meta_gd"],
    "02_linear_regression": ["fig3_linear_regression", "fig3b_linear_regression_exact",
                             "fig3_linear_regression_draws"],
    "03_sinusoid": ["fig1_gradient_norm", "fig5_tg_vs_h2", "fig4a_sinusoid_sgd", "fig6a_sinusoid_adam",
                    "fig4a_6a_sinusoid_probability", "fig4a_measured_beta_critical"],
    "04_omniglot": ["fig4b_omniglot_sgd", "fig6b_omniglot_adam", "fig4b_measured_beta_critical"],
    "05_miniimagenet": ["fig4c_miniimagenet_sgd", "fig6c_miniimagenet_adam", "fig4c_measured_beta_critical"],
    "06_guideline": ["guideline_boundaries", "guideline_own_model"],
}
FEWSHOT = ("04_omniglot", "05_miniimagenet")
"""Notebooks with a two-step inner loop whose results carry per-optimizer claim entries."""
SEEDED = ("02_linear_regression", "03_sinusoid")
COMMITTED_MAPS = REPO_ROOT / "figures" / "maps"
"""Notebook 06 reads measured maps; its smoke run reads the committed ones of the default profile."""
"""Notebooks whose maps are read from several seeds; they write `<notebook>.json`."""
MAPS = {
    "02_linear_regression": ["second-sgd", "first-sgd", "simplified-sgd"],
    "03_sinusoid": ["second-sgd", "second-adam"],
    "04_omniglot": ["second-sgd", "second-adam"],
    "05_miniimagenet": ["second-sgd", "second-adam"],
}
"""The measured maps a notebook writes to `maps/<notebook>.json` (stability.export_map), by series."""


def synthetic_miniimagenet(root: Path, classes: int = 6, per_class: int = 3) -> Path:
    """A tiny MiniImagenet in the pickle layout: random 84x84 RGB images, class_dict name -> indices."""
    folder = root / "miniimagenet"
    folder.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 256, (classes * per_class, 84, 84, 3), dtype=np.uint8)
    class_dict = {f"n{c:08d}": list(range(c * per_class, (c + 1) * per_class)) for c in range(classes)}
    payload = pickle.dumps({"image_data": pixels, "class_dict": class_dict})
    (folder / "mini-imagenet-cache-train.pkl").write_bytes(payload)
    return root


def use_data_for(notebook: Path, tmp_path: Path, monkeypatch) -> None:
    """Point $MAMLPAPER_DATA (which the notebook's kernel inherits) at the data the notebook needs."""
    if notebook.stem == "04_omniglot":
        shared = REPO_ROOT.parent / "shared" / "data"
        root = Path(os.environ["MAMLPAPER_DATA"]) if "MAMLPAPER_DATA" in os.environ else shared
        parts = ("images_background_small1.zip", "images_background_small2.zip")
        full = ("images_background.zip", "images_evaluation.zip")
        if not any(all((root / "omniglot" / p).exists() for p in set_) for set_ in (parts, full)):
            pytest.skip(f"Omniglot is not in {root / 'omniglot'} (set MAMLPAPER_DATA to a folder holding omniglot/)")
        monkeypatch.setenv("MAMLPAPER_DATA", str(root))
    elif notebook.stem == "05_miniimagenet":
        monkeypatch.setenv("MAMLPAPER_DATA", str(synthetic_miniimagenet(tmp_path / "data")))
    elif notebook.stem == "06_guideline":  # Omniglot where it is, for the advisor on 04's map; else 06 leaves it out
        shared = REPO_ROOT.parent / "shared" / "data"
        monkeypatch.setenv("MAMLPAPER_DATA", os.environ.get("MAMLPAPER_DATA", str(shared)))


SHARED_PARAMETERS = {"profile", "seed", "device", "figures_dir"}


def test_every_notebook_is_listed_with_its_figures():
    assert sorted(p.stem for p in NOTEBOOKS) == sorted(FIGURES)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_declares_the_shared_parameters(notebook, tmp_path):
    import papermill

    converted = pipeline.convert(notebook, tmp_path / f"{notebook.stem}.ipynb")
    declared = papermill.inspect_notebook(str(converted))
    assert SHARED_PARAMETERS <= set(declared), f"missing: {SHARED_PARAMETERS - set(declared)}"
    assert declared["profile"]["inferred_type_name"] == "str"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_smoke_run_writes_its_figures(notebook, tmp_path, monkeypatch):
    use_data_for(notebook, tmp_path, monkeypatch)
    figures = tmp_path / "figures"
    parameters = {"profile": "smoke", "figures_dir": str(figures)}
    if "cache_dir" in notebook.read_text():
        parameters["cache_dir"] = str(tmp_path / "cache")
    if "maps_dir" in notebook.read_text():
        parameters["maps_dir"] = str(COMMITTED_MAPS)
    out = pipeline.execute(notebook, tmp_path / f"{notebook.stem}.ipynb", parameters)
    assert out.exists()
    for name in FIGURES[notebook.stem]:
        for suffix in (".png", ".pdf"):
            assert (figures / f"{name}{suffix}").stat().st_size > 0, f"{name}{suffix} not written"
    result = json.loads((figures / f"{notebook.stem}.json").read_text())
    assert result["profile"] == "smoke", "every notebook writes <notebook>.json beside its figures"
    if notebook.stem in SEEDED:
        assert result["seeds"] == [0, 1]
    if notebook.stem == "06_guideline":
        assert result["profile"] == "smoke" and set(result["within_2x"]) == {"finite", "trained"}
        assert result["own_model"]["advisor_loss"] > 0 and result["own_model"]["grid_runs"] > 0
    if notebook.stem in MAPS:
        path = figures / "maps" / f"{notebook.stem}.json"
        assert json.loads(path.read_text())["profile"] == "smoke"
        maps = stability.read_maps(path)
        assert sorted(maps) == sorted(MAPS[notebook.stem])
        for name, measured in maps.items():
            variant, optimizer = name.split("-")
            labels = measured.labels
            assert (labels["variant"], labels["optimizer"]) == (variant, optimizer)
            assert {"problem", "iterations"} <= set(labels) and labels["steps"] == (2 if notebook.stem in FEWSHOT else 1)
            assert measured.cells["runs"].sum() > 0 and len(measured.beta_critical) > 0
    if notebook.stem in FEWSHOT:
        assert result["figures"] == FIGURES[notebook.stem]
        for optimizer in ("sgd", "adam"):
            assert {"finite", "trained", "runs", "diverged", "collapsed"} <= set(result[optimizer])
            assert result[optimizer]["runs"] == len(result["setting"]["alphas"]) * len(result["setting"]["betas"])


def test_miniimagenet_without_its_data_is_skipped_not_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("MAMLPAPER_DATA", str(tmp_path / "empty"))
    build = tmp_path / "build"
    with pytest.raises(pipeline.NotebookSkipped, match="mini-imagenet-cache-train.pkl"):
        pipeline.execute(REPO_ROOT / "notebooks" / "05_miniimagenet.py", build / "05_miniimagenet.ipynb",
                         {"profile": "smoke", "figures_dir": str(tmp_path / "figures")})
    assert (build / "05_miniimagenet.skipped").read_text().startswith("05_miniimagenet.py: MiniImagenet split")
    assert not (build / "05_miniimagenet.ipynb").exists() and not (tmp_path / "figures").exists()
    assert pipeline.summary(build) == 0


def test_a_failing_notebook_leaves_an_error_line_and_no_output(tmp_path, capsys):
    notebook = tmp_path / "99_broken.py"
    notebook.write_text('# %% tags=["parameters"]\nprofile: str = "default"\n\n# %%\nraise ValueError("boom in cell 2")\n')
    build = tmp_path / "build"
    with pytest.raises(Exception):
        pipeline.execute(notebook, build / "99_broken.ipynb", {"profile": "smoke"})
    assert not (build / "99_broken.ipynb").exists()
    assert (build / "99_broken.failed.ipynb").exists()
    assert (build / "99_broken.error").read_text() == "99_broken.py: ValueError: boom in cell 2\n"
    assert not list(build.glob(".*"))
    assert pipeline.summary(build) == 1
    assert "FAILED 99_broken.py: ValueError: boom in cell 2" in capsys.readouterr().out


def test_the_kernel_talks_over_private_sockets_without_a_tcp_warning(tmp_path, capfd):
    notebook = tmp_path / "97_quiet.py"
    notebook.write_text("# %%\nfrom ipykernel.kernelapp import IPKernelApp\nprint('transport', IPKernelApp.instance().transport)\n")
    output = pipeline.execute(notebook, tmp_path / "build" / "97_quiet.ipynb")
    assert "transport ipc" in output.read_text()
    assert "eavesdropping" not in capfd.readouterr().err


def test_make_hands_the_executor_only_to_notebooks_that_declare_it(tmp_path):
    takes = tmp_path / "96_takes.py"
    takes.write_text('# %% tags=["parameters"]\nprofile: str = "default"\nexecutor: str = ""  # where sweeps run\n\n'
                     '# %%\nprint("executor is", repr(executor))\n')
    ignores = tmp_path / "95_ignores.py"
    ignores.write_text('# %% tags=["parameters"]\nprofile: str = "default"\n\n# %%\nexecutor = "never set"\n')
    assert pipeline.takes_parameter(takes, "executor") and not pipeline.takes_parameter(ignores, "executor")
    assert pipeline.takes_parameter(takes, "profile") and not pipeline.takes_parameter(takes, "exec")
    out = tmp_path / "build" / "96_takes.ipynb"
    assert pipeline.main(["run", str(takes), str(out), "--profile", "smoke", "--executor", "processes:2",
                          "--figures-dir", str(tmp_path / "figures")]) == 0
    assert "executor is 'processes:2'" in out.read_text()


def test_bad_profile_is_refused_before_running(tmp_path):
    with pytest.raises(ValueError, match="profile='fast' is not allowed; choose one of smoke, default, paper"):
        pipeline.execute(NOTEBOOKS[0], tmp_path / "x.ipynb", {"profile": "fast"})
    with pytest.raises(ValueError, match="must be an existing Jupytext .py file"):
        pipeline.execute(Path("nope.py"), tmp_path / "x.ipynb")


def test_a_notebook_without_its_data_is_skipped_not_failed(tmp_path, capsys):
    notebook = tmp_path / "98_needs_data.py"
    notebook.write_text('# %% tags=["parameters"]\nprofile: str = "default"\n\n# %%\n'
                        'class DataMissing(FileNotFoundError):\n    pass\n\n\n'
                        'raise DataMissing("put mini-imagenet-cache-train.pkl in data/miniimagenet/")\n')
    build = tmp_path / "build"
    with pytest.raises(pipeline.NotebookSkipped, match="mini-imagenet-cache-train.pkl"):
        pipeline.execute(notebook, build / "98_needs_data.ipynb", {"profile": "smoke"})
    assert not (build / "98_needs_data.ipynb").exists() and not (build / "98_needs_data.error").exists()
    assert pipeline.summary(build) == 0
    out = capsys.readouterr().out
    assert "0 failed, 1 skipped" in out
    assert "skipped 98_needs_data.py (data missing: put mini-imagenet-cache-train.pkl in data/miniimagenet/)" in out
    assert pipeline.main(["run", str(notebook), str(build / "98_needs_data.ipynb"), "--profile", "smoke",
                          "--figures-dir", str(tmp_path / "figures")]) == 0
