"""Tables fit the terminal and say every value whole: `slsdk bench`, `slsdk info`, `slsdk targets` and the demo's
lines, at COLUMNS=80 and 200, run as a user does (a temporary folder, relative paths)."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from slsdk.bench import BenchRow
from slsdk.demos.pipeline import fidelity_line, final_line, results_table
from slsdk.models.flops import info_rows, student_rows
from slsdk.tables import fit_table, num
from slsdk.targets import TARGETS, targets_markdown

WIDTHS = (80, 200)


def _slsdk(args, cwd, width: int) -> str:
    exe = shutil.which("slsdk")
    argv = ([exe] if exe else [sys.executable, "-m", "slsdk.cli"]) + list(args)
    env = {**os.environ, "COLUMNS": str(width), "LINES": "50"}
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return res.stdout


def assert_fits(text: str, width: int) -> None:
    long = [line for line in text.splitlines() if len(line.rstrip()) > width]
    assert not long, f"{len(long)} line(s) over {width} columns:\n" + "\n".join(long)
    assert "…" not in text, text


def _cells(text: str) -> set[str]:
    """Every whole value the output shows: the words between table borders and spaces."""
    for ch in "│┃|":
        text = text.replace(ch, " ")
    return set(text.split())


def test_num_writes_meaningful_digits():
    assert num(2.384185791015625e-07, 2) == "2.4e-07"
    assert num(85.71428571428571) == "85.7"
    assert num(85.71428571428571, unit="%") == "85.7 %"
    assert num(None) == "n/a" and num(float("nan")) == "n/a"
    assert num(3698112) == "3,698,112" and num(1234.5) == "1,234" and num(0.0029) == "0.00290"
    assert num(0.12345) == "0.123" and num(17.6) == "17.6" and num(0) == "0" and num(19.0) == "19.0"


@pytest.mark.parametrize("width", WIDTHS)
def test_fit_table_never_cuts_and_falls_back_to_blocks(width):
    long_word = "x" * 60
    rows = [(f"row{i}", long_word, num(1e6 + i), "a few words that wrap") for i in range(3)]
    buf = io.StringIO()
    console = Console(file=buf, width=width, soft_wrap=True)
    console.print(fit_table(console, "t", ("name", "word", "number", "text"), rows, notes=["a note " * 30]))
    out = buf.getvalue()
    assert_fits(out, width)
    assert long_word in out and "1,000,002" in out
    assert ("┃" in out) == (width == 200)   # too wide for 80 columns: one block per row


@pytest.mark.parametrize("width", WIDTHS)
def test_targets_table_fits(tmp_path, width):
    out = _slsdk(["targets"], tmp_path, width)
    assert_fits(out, width)
    words = _cells(out)
    for t in TARGETS.values():
        assert t.name in words and t.suffix in words
        assert set(t.delegate.split()) <= words and set(t.notes.split()) <= words


def test_targets_markdown_is_the_readme_table(tmp_path):
    out = _slsdk(["targets", "--markdown"], tmp_path, 80)
    assert out == targets_markdown() + "\n"
    assert out.startswith("| target |")


@pytest.mark.parametrize("width", WIDTHS)
def test_info_fits_and_shows_every_count(tmp_path, width):
    out = _slsdk(["info", "ViT-T/16-test"], tmp_path, width)
    assert_fits(out, width)
    words = _cells(out)
    for r in info_rows("ViT-T/16-test"):
        assert {r["variant"], num(r["trainable_params"]), num(r["frozen_params"]), num(r["gmacs_per_frame"]),
                num(r["extra_pct"])} <= words, r
    for r in student_rows():
        assert {r["student"], num(r["total_params"] / 1e6), num(r["gmacs_per_frame"]), num(r["int8_mb_est"])} <= words


@pytest.fixture(scope="module")
def bundles_dir(tmp_path_factory, tiny_student):
    from slsdk.convert import convert

    root = tmp_path_factory.mktemp("bench")
    vocab = ["<blank>", "HELLO", "THANKS", "YES"]
    for target in ("onnx", "ort"):
        convert(tiny_student(len(vocab)), target, "fp32", root / "bundles" / f"student-{target}-fp32", vocab=vocab)
    return root


@pytest.mark.parametrize("width", WIDTHS)
def test_bench_fits_and_shows_every_value(bundles_dir, width):
    out = _slsdk(["bench", "--bundles", "bundles", "-o", f"bench{width}"], bundles_dir, width)
    assert_fits(out, width)
    words = _cells(out)
    rows = json.loads((bundles_dir / f"bench{width}" / "bench.json").read_text())["rows"]
    assert len(rows) == 2
    for r in rows:
        shown = {r["format"], r["precision"], r["status"], num(r["size_mb"]), num(r["chunk_ms_p50"]),
                 num(r["chunk_ms_p90"]), num(r["frames_per_s"])}
        assert shown <= words, (shown - words, out)
    assert "None" not in out and "n/a" in out   # no WER measured (no held-out set): said so


@pytest.mark.parametrize("width", WIDTHS)
def test_demo_lines_fit_with_meaningful_digits(width):
    buf = io.StringIO()
    console = Console(file=buf, width=width, soft_wrap=True)
    line = fidelity_line("onnx-int8", {"max_abs_err": 2.384185791015625e-07, "wer": 85.71428571428571,
                                       "wer_torch": None})
    assert line == "onnx-int8: max abs logit err 2.4e-07, WER 85.7 % (torch n/a)"
    rows = [BenchRow("executorch-coreml", "fp16", "validated only", size_mb=1.234567),
            BenchRow("onnx", "int8", "ok", size_mb=0.3456, wer=85.71428571428571, chunk_ms_p50=12.3456,
                     frames_per_s=648.2)]
    console.print(results_table(rows, {"teacher": 42.857142857, "student": None}, {"teacher": 3.21, "student": 0.5},
                                console))
    files = [Path("slsdk_demo") / p for p in ("results.json", "teacher/curves.png", "student/curves.png",
                                             "bench/bench.csv", "bench/bench.json", "bench/bench.png")]
    console.print(final_line(123.456, files, Path("slsdk_demo/bundles")), soft_wrap=False)
    out = buf.getvalue()
    assert_fits(out, width)
    words = _cells(out.replace(",", " ").replace(";", " "))
    assert {"executorch-coreml", "85.7", "42.9", "12.3", "648", "1.23", "0.346", "n/a", "123"} <= words, out
    assert {str(p) for p in files} <= words and "None" not in out
