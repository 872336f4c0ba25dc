"""Invoking the command line in tests: one call, and the one-line error it must give."""

from typer.testing import CliRunner

from lcmap.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, code=1):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert len([x for x in result.output.splitlines() if x.strip()]) == 1, result.output
    return result.output
