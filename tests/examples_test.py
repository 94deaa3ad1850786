"""The examples are self-checking: each one's run() must land within its tolerance."""

import pytest

from jsoftmax.examples import ALL
from jsoftmax.examples import _common
from jsoftmax.examples import tour


@pytest.mark.parametrize("module", ALL, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_example_meets_its_tolerance(module):
    result = module.run()
    assert result.ok, (result.name, result.gap, result.tolerance)
    assert result.how and result.reference and result.found


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


def test_tour_passes(capsys):
    assert tour.main() == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "BAD" not in out
