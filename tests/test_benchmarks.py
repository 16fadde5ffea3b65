"""benchmarks/compare.py's command line and result files, without a GPU: the --timing choice, and a merge of the
committed graph-timed results that keeps the timing in the header of every table it writes."""
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import compare  # noqa: E402  (benchmarks/ on the path first)
from bench import report  # noqa: E402


def test_timing_defaults_to_events_and_takes_graph():
    assert compare.parse_args(["--shapes", "seed"]).timing == "events"
    assert compare.parse_args(["--shapes", "seed", "--timing", "graph"]).timing == "graph"


def test_timing_rejects_other_values(capsys):
    with pytest.raises(SystemExit):
        compare.parse_args(["--timing", "wallclock"])
    assert "--timing" in capsys.readouterr().err


def test_merge_keeps_the_graph_timing_in_the_tables(tmp_path):
    src = os.path.join(ROOT, "benchmarks", "results", "tiled_graph.json")
    with open(src) as f:
        data = json.load(f)
    assert data["meta"]["settings"]["timing"] == "graph"
    assert all(r["timing"] == "graph" for r in data["rows"])
    assert compare.main(["--merge", str(tmp_path), "merged", src, "--no-plot"]) == 0
    text = (tmp_path / "merged.md").read_text()
    assert "timing: graph" in text
    assert text.count("| grouped_g32 |") == 16
    assert "timing: graph" in report.header_line(data["meta"])


def test_header_says_events_for_runs_without_a_timing_setting():
    meta = {"gpu": "X", "sm_count": 1, "torch": "t", "cuda": "c", "cudnn": 1, "conv2d_ext": "v",
            "git_commit": "abc", "git_dirty": False, "date": "d", "settings": {"variant": "auto"}}
    assert report.header_line(meta).endswith("timing: events")
