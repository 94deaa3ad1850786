"""The examples are self-checking: each one's run() must land within its tolerance.

Also the command lines (``python -m jsoftmax.examples``, ``... .NAME``) and the
curves that ``--plot`` draws.
"""

import functools
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

from jsoftmax import examples
from jsoftmax.examples import ALL
from jsoftmax.examples import _common
from jsoftmax.examples import tour
from jsoftmax.examples.__main__ import main


@functools.cache
def _result(name):
    """Each example runs once per session, with its curves (checked below)."""
    run = examples.load(name).run
    kwargs = {"trace": True} if "trace" in inspect.signature(run).parameters else {}
    return run(**kwargs)


def _check_panels(result):
    """Every curve a plot would name has data, and a log axis spans data > 0."""
    for panel in result.plot_panels():
        assert panel.title and panel.ylabel and panel.xlabel
        assert panel.curves, (result.name, panel.title)
        for label, values in panel.curves.items():
            values = np.asarray(values, np.float64)
            assert values.size >= 2, (result.name, label)
            drawn, _ = _common._drawn(values, panel)
            assert np.all(np.isfinite(drawn)), (result.name, label)
            if panel.log:
                assert drawn.min() >= panel.floor, (result.name, label)
                assert drawn[0] > panel.floor, (result.name, label)


@pytest.mark.slow
@pytest.mark.parametrize("module", ALL, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_example_meets_its_tolerance(module):
    result = _result(module.__name__.rsplit(".", 1)[-1])
    assert result.ok, (result.name, result.gap, result.tolerance)
    assert result.how and result.reference and result.found
    assert result.plot_panels(), f"{result.name} draws nothing with --plot"
    _check_panels(result)


@pytest.mark.slow
def test_traced_curves_follow_minimize_step_by_step():
    result = _result("multinomial")
    (panel,) = result.panels
    lbfgs, adam = panel.curves.values()
    # one value per update that minimize applied, ending at the reported answer
    assert len(lbfgs) == result.iterations
    assert len(adam) == result.baselines["adam(0.1) to gtol 1e-8"]
    np.testing.assert_allclose(lbfgs[-1], result.gap, rtol=0, atol=1e-15)


def test_log_panels_end_at_the_floor():
    panel = _common.Panel("t", {}, ylabel="y")
    drawn, hit = _common._drawn(np.array([1.0, 1e-3, 1e-17, -1e-16, 1e-15]), panel)
    np.testing.assert_array_equal(drawn, [1.0, 1e-3, 1e-16])
    assert hit
    drawn, hit = _common._drawn(np.array([1.0, np.nan, 1.0]), panel)
    np.testing.assert_array_equal(drawn, [1.0, 1e-16])
    linear = _common.Panel("t", {}, ylabel="y", log=False)
    values = np.array([3.0, -1.0, 0.0])
    drawn, hit = _common._drawn(values, linear)
    np.testing.assert_array_equal(drawn, values)
    assert not hit


@pytest.mark.slow
def test_figure_draws_every_named_curve():
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    result = _result("portfolio")
    fig = _common.figure(result)
    try:
        assert len(fig.axes) == len(result.panels) == 2
        for ax, panel in zip(fig.axes, result.panels, strict=True):
            lines = {line.get_label(): line for line in ax.get_lines()}
            assert list(lines) == list(panel.curves)
            legend = [text.get_text() for text in ax.get_legend().get_texts()]
            assert legend == list(panel.curves)
            low, high = ax.get_ylim()
            ys = np.concatenate([line.get_ydata() for line in lines.values()])
            # the axis spans the data (no 1e-300 clamp stretching it)
            assert low >= panel.floor / 10 and high <= 10 * ys.max()
        # natural gradient and exponentiated gradient coincide, so they must be
        # drawn differently to both show
        lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
        eg = lines["exponentiated gradient"]
        ng = lines["map + natural gradient (= exponentiated gradient)"]
        assert eg.get_linestyle() != ng.get_linestyle()
    finally:
        plt.close(fig)


def test_no_curves_nothing_plotted(tmp_path):
    result = _common.Result("x", "p", "f", "r", "h", gap=0.0, tolerance=1.0)
    assert not _common.plot(result, str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_cli_runs_one_example_with_steps_and_seed(capsys):
    from jsoftmax.examples import multinomial

    assert (
        _common.cli(
            multinomial.run, multinomial.__doc__, ["--steps", "150", "--seed", "3"]
        )
        == 0
    )
    assert "ok  multinomial" in capsys.readouterr().out
    # too few steps cannot reach the tolerance: the example says so by its exit status
    assert _common.cli(multinomial.run, multinomial.__doc__, ["--steps", "2"]) == 1


@pytest.mark.slow
def test_cli_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from jsoftmax.examples import entropy

    path = tmp_path / "entropy.png"
    assert _common.cli(entropy.run, entropy.__doc__, ["--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {path}" in capsys.readouterr().out


def test_plot_without_matplotlib_names_the_extra(tmp_path, monkeypatch, capsys):
    from jsoftmax.examples import multinomial

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    path = str(tmp_path / "m.png")
    assert _common.cli(multinomial.run, multinomial.__doc__, ["--plot", path]) == 2
    assert main(["multinomial", "--plot", str(tmp_path / "dir")]) == 2
    out, err = capsys.readouterr()
    assert err.count("pip install -e '.[plot]'") == 2
    assert "multinomial" not in out  # nothing ran
    assert not os.path.exists(path)


def test_main_help_lists_every_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in examples.NAMES:
        assert f"\n  {name} " in out
    assert "--plot DIR" in out and "--seed" in out


@pytest.mark.slow
def test_main_runs_only_the_named_examples(capsys):
    assert main(["bandit", "entropy"]) == 0
    out = capsys.readouterr().out
    assert "[1/2] bandit" in out and "[2/2] entropy" in out
    assert "multinomial" not in out
    assert "2 passed, 0 failed" in out
    assert main(["entropy", "no_such_example"]) == 2
    assert "no_such_example" in capsys.readouterr().err


@pytest.mark.slow
def test_package_import_loads_no_example():
    # `python -m jsoftmax.examples.NAME` warns (runpy) when the package's
    # __init__ has already imported NAME; it must import none of them.
    code = (
        "import sys, jsoftmax.examples\n"
        "loaded = [m for m in sys.modules if m.startswith('jsoftmax.examples.')]\n"
        "assert not loaded, loaded\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.slow
def test_running_a_module_directly_gives_no_runtime_warning():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::RuntimeWarning",
            "-m",
            "jsoftmax.examples.bandit",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "RuntimeWarning" not in done.stderr
    assert "ok  bandit" in done.stdout


@pytest.mark.slow
def test_tour_passes(capsys):
    assert tour.main() == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "BAD" not in out
