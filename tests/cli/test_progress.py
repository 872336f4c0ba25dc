"""``lcmap.cli._progress``: a bar on a terminal; in a log, a line per stage and per tenth."""

import pytest

from lcmap.cli import _progress
from lcmap.cli._progress import _duration, _StageLines, progress_bar


@pytest.fixture
def clock(monkeypatch):
    """A monotonic clock the test moves by hand."""
    now = [100.0]
    monkeypatch.setattr(_progress.time, "monotonic", lambda: now[0])
    return now


def test_a_log_gets_a_line_per_stage_and_per_tenth_with_the_time_left(capsys, clock) -> None:
    lines = _StageLines("map scene.tif", quiet=False)
    for done in range(1, 101):
        clock[0] += 1.0
        lines(done, 100)
    lines.phase("write COG")
    lines(1, 1)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "map scene.tif: started"
    assert err[1] == "map scene.tif: 1/100 (0%) in 1 s, about 1 min 39 s left"  # first news
    assert err[2] == "map scene.tif: 10/100 (10%) in 10 s, about 1 min 30 s left"
    assert err[11] == "map scene.tif: 100/100 (100%) in 1 min 40 s"  # no estimate at the end
    assert err[12:] == ["write COG: started", "write COG: 1/1 (100%) in 0 s"]


def test_quiet_prints_nothing_and_an_unknown_total_only_the_start(capsys, clock) -> None:
    _StageLines("fit", quiet=True)(5, 10)
    assert capsys.readouterr().err == ""
    lines = _StageLines("fit", quiet=False)
    lines(3, 0)
    lines.status("")  # an empty status says nothing
    assert capsys.readouterr().err == "fit: started\n"


def test_progress_to_a_pipe_is_plain_lines_without_terminal_codes(capsys, monkeypatch) -> None:
    from lcmap.cli import _app

    monkeypatch.setitem(_app._state, "quiet", False)  # an earlier command's -q stays in it
    with progress_bar("segment") as update:
        update(1, 2, description="map a.tif")
        update(2, 2)
    err = capsys.readouterr().err
    assert err.startswith("map a.tif: started\n") and "\x1b[" not in err


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0 s"), (59, "59 s"), (65, "1 min 05 s"), (3725, "1 h 02 min")]
)
def test_durations_read_as_a_person_writes_them(seconds, text) -> None:
    assert _duration(seconds) == text
