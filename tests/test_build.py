"""The compiled module conv2d_ext._C and the source distribution. No GPU needed."""
import glob
import os
import subprocess
import sys
import tarfile

import pytest
import torch

import conv2d_ext
from conv2d_ext import _C, heuristics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_POINTS = ("forward_direct", "backward_data_direct", "backward_weight_direct", "backward_bias")


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_point_is_exposed(name):
    """The extension exposes one entry point per pass of the direct family, plus the bias gradient."""
    assert callable(getattr(_C, name))


def test_compiled_families_match_the_heuristics():
    """_C.FAMILIES holds 'direct', is a subset of the known families, and is exactly what the heuristics
    consider available; each compiled family has an entry point for every pass."""
    families = list(_C.FAMILIES)
    assert "direct" in families
    assert set(families) <= set(heuristics.FAMILIES)
    assert set(families) == set(heuristics.AVAILABLE)
    for family in families:
        for pass_ in heuristics.PASSES:
            assert callable(getattr(_C, f"{pass_}_{family}")), (pass_, family)


def test_the_package_loads_the_extension_it_was_built_with():
    """conv2d_ext._C is the compiled module inside the package directory."""
    assert conv2d_ext._C is _C
    assert os.path.dirname(os.path.abspath(_C.__file__)) == os.path.dirname(os.path.abspath(conv2d_ext.__file__))
    assert _C.__file__.endswith(".so")


def cpu_call(name):
    """Arguments of a valid call of each entry point (3x3 convolution, N=1, C=2, 5x5 -> K=3, 3x3), on the CPU."""
    x, w, y = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3), torch.randn(1, 3, 3, 3)
    geometry = ([1, 1], [0, 0, 0, 0], [1, 1], 1, True)
    return {
        "forward_direct": (x, w, None, y) + geometry,
        "backward_data_direct": (y, w, x) + geometry,
        "backward_weight_direct": (y, x, w) + geometry,
        "backward_bias": (y, torch.randn(3)),
    }[name]


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_points_reject_cpu_tensors(name):
    """Every entry point refuses CPU tensors with a RuntimeError that mentions CUDA, writing nothing."""
    args = cpu_call(name)
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    before = [t.clone() for t in tensors]
    with pytest.raises(RuntimeError, match="CUDA"):
        getattr(_C, name)(*args)
    for t, b in zip(tensors, before):
        assert torch.equal(t, b)


def test_forward_entry_with_bias_rejects_cpu_tensors():
    """The forward entry point refuses CPU tensors with a bias too."""
    x, w, b, y = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3), torch.randn(3), torch.randn(1, 3, 3, 3)
    with pytest.raises(RuntimeError, match="CUDA"):
        _C.forward_direct(x, w, b, y, [1, 1], [0, 0, 0, 0], [1, 1], 1, True)


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    """Names in the sdist built by `python setup.py sdist`, relative to its top folder (egg-info and dist kept out
    of the work tree)."""
    out = tmp_path_factory.mktemp("sdist")
    result = subprocess.run(
        [sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(out), "sdist", "--dist-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    archives = glob.glob(str(out / "*.tar.gz"))
    assert len(archives) == 1, archives
    with tarfile.open(archives[0]) as tar:
        names = tar.getnames()
    top = os.path.basename(archives[0])[: -len(".tar.gz")]
    assert top == f"conv2d_ext-{conv2d_ext.__version__}"
    assert all(n == top or n.startswith(top + "/") for n in names)
    return {n[len(top) + 1:] for n in names if n != top}


def test_sdist_contains_every_source_under_csrc(sdist):
    """Every file under csrc/ (what setup.py compiles and includes) is in the sdist."""
    sources = {
        os.path.relpath(path, ROOT).replace(os.sep, "/")
        for path in glob.glob(os.path.join(ROOT, "csrc", "**"), recursive=True)
        if os.path.isfile(path)
    }
    assert any(s.endswith(".cu") for s in sources) and "csrc/bindings.cpp" in sources
    assert sources - sdist == set()


@pytest.mark.parametrize("name", ["setup.py", "pyproject.toml", "MANIFEST.in", "README.md"])
def test_sdist_contains_build_files(sdist, name):
    """The sdist carries what building it needs (setup.py, pyproject.toml) and the README that pyproject names."""
    assert name in sdist


def test_sdist_contains_the_python_package_but_no_build_output(sdist):
    """Every module of the package is in the sdist; the compiled extension and build/ are not."""
    modules = {f"conv2d_ext/{os.path.basename(p)}" for p in glob.glob(os.path.join(ROOT, "conv2d_ext", "*.py"))}
    assert "conv2d_ext/__init__.py" in modules
    assert modules - sdist == set()
    assert not [n for n in sdist if n.endswith((".so", ".o", ".pyc")) or n.startswith("build/")]
