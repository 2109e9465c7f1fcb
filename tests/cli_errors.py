"""The CLI's promise on bad input, checked one way by every test that makes it: a non-zero exit, no traceback,
exactly one ``error:`` line on stderr, holding each of the given needles (the file, the problem)."""
from __future__ import annotations


def one_line_error(r, *needles: str) -> str:
    """Assert ``r`` (anything with ``returncode``, ``stdout``, ``stderr`` as text) failed in one line; return it."""
    assert r.returncode != 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Traceback" not in r.stderr + r.stdout, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr[-3000:]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]
