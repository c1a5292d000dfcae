"""Run `pmanet ARGV` in this process, as the console script would: the helper of the CLI tests."""

import io
from contextlib import redirect_stderr, redirect_stdout

from pmanet.cli import main


def run(*argv):
    "Run `pmanet ARGV` in this process: (exit code, stdout, stderr)."
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err): rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()
