"""The examples are self-checking: their main() must return 0."""

from jsoftmax.examples import tour


def test_tour_passes(capsys):
    assert tour.main() == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "BAD" not in out
