"""The parts of benchmarks/compare.py and benchmarks/overhead.py: `env` (machine, versions, git commit), `timing`
(CUDA-event and host wall-clock timers), `suite` (one benchmark row: check, time ours, time cuDNN) and `report`
(tables, summary, result files, speedup plot).

`testing` is conv2d_ext.testing (cases, tolerances, inputs, reference). When the extension is not built, the
module is loaded from its file (it needs only torch), so that `--help` and `--merge` work anywhere.
"""
import importlib.util
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

try:
    from conv2d_ext import testing
except ImportError:
    _spec = importlib.util.spec_from_file_location("conv2d_ext_testing", REPO_ROOT / "conv2d_ext" / "testing.py")
    testing = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(testing)
