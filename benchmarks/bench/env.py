"""Where a result was measured: GPU, versions (torch, CUDA, cuDNN, conv2d_ext), git commit, date and command."""
import datetime
import os
import shlex
import subprocess
import sys

import torch

from . import REPO_ROOT


def short_exc(e, limit=300):
    """'Type: first line of the message', at most `limit` characters."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"[:limit]


def _safe(f):
    try:
        return f()
    except Exception as e:
        return f"unknown ({short_exc(e, 100)})"


def git_info():
    """(commit, dirty). A copy of the tree without .git (a remote GPU machine) names its commit in the environment:
    CONV2D_EXT_COMMIT, CONV2D_EXT_DIRTY=1."""
    if os.environ.get("CONV2D_EXT_COMMIT"):
        return os.environ["CONV2D_EXT_COMMIT"], os.environ.get("CONV2D_EXT_DIRTY", "unknown") == "1"

    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
    except Exception:
        return "unknown", "unknown"
    try:
        dirty = bool(git("status", "--porcelain", "--", ".", ":(exclude)benchmarks/results"))
    except Exception:
        dirty = "unknown"
    return commit, dirty


def collect_meta(ext=None, **settings):
    """The machine and versions, the conv2d_ext module `ext` (if imported), and the run's settings."""
    commit, dirty = git_info()
    return {
        "gpu": _safe(torch.cuda.get_device_name),
        "sm_count": _safe(lambda: torch.cuda.get_device_properties(0).multi_processor_count),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": _safe(torch.backends.cudnn.version),
        "conv2d_ext": getattr(ext, "__version__", "unknown"),
        "conv2d_ext_file": getattr(ext, "__file__", None),
        "git_commit": commit,
        "git_dirty": dirty,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable] + sys.argv),
        "settings": settings,
    }


def describe(meta):
    """One line: GPU, versions, commit and date."""
    commit = " + ".join(c[:12] for c in str(meta["git_commit"]).split(" + "))
    commit += "-dirty" if meta["git_dirty"] is True else ""
    return (f"GPU {meta['gpu']} ({meta['sm_count']} SMs) | torch {meta['torch']} | CUDA {meta['cuda']} | "
            f"cuDNN {meta['cudnn']} | conv2d_ext {meta['conv2d_ext']} | commit {commit} | {meta['date']}")


def cuda_and_extension():
    """(conv2d_ext, None) when CUDA and the built extension are both there, else (None, the reason)."""
    if not torch.cuda.is_available():
        return None, "CUDA is not available"
    try:
        import conv2d_ext
    except ImportError as e:
        return None, f"cannot import conv2d_ext ({e}); build/install the extension first"
    return conv2d_ext, None
