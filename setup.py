"""Build conv2d_ext._C, one CUDA extension compiled from every source under csrc/.

Build with the torch you will run with: `pip install --no-build-isolation .` (or `-e .`). Needs the CUDA toolkit
whose major version matches torch.version.cuda.

Environment:
  CUDA_HOME             CUDA toolkit root. When unset: the toolkit of the `nvcc` on PATH (following wrapper scripts
                        that exec the real compiler), else $CUDA_PATH, /usr/local/cuda, or the newest
                        /usr/local/cuda-X.Y whose major version matches torch's.
  TORCH_CUDA_ARCH_LIST  GPU architectures to build for (default "8.0;9.0+PTX": A100 and H100 machine code, and PTX
                        that newer GPUs compile at load time). 9.0 builds sm_90a (wgmma kernels) with CUDA 12+.
  MAX_JOBS              parallel compile jobs (ninja), default: the number of CPUs.
"""
import glob
import os
import re
import shutil
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
BUILD_COMMANDS = {"build", "build_ext", "install", "develop", "bdist_wheel", "editable_wheel"}

try:
    import torch  # noqa: F401
except ImportError:
    sys.exit("conv2d_ext builds against your installed torch: install torch first (pip install torch), then build "
             "with `pip install --no-build-isolation .` so the build sees it.")


def _is_toolkit(root):
    return root and os.path.exists(os.path.join(root, "bin", "nvcc"))


def _real_nvcc(nvcc):
    """Follows wrapper scripts ('exec /usr/local/cuda-X/bin/nvcc "$@"') to the compiler itself."""
    for _ in range(4):
        nvcc = os.path.realpath(nvcc)
        with open(nvcc, "rb") as f:
            head = f.read(4096)
        match = re.search(rb"(/\S+/bin/nvcc)\b", head) if head.startswith(b"#!") else None
        if match is None:
            return nvcc
        nvcc = match.group(1).decode()
    return nvcc


def _version(root):
    found = re.search(r"cuda-(\d+)\.(\d+)$", root)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def find_cuda_home():
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        return os.path.dirname(os.path.dirname(_real_nvcc(nvcc)))
    for root in (os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if _is_toolkit(root):
            return root
    major = int((torch.version.cuda or "0").split(".")[0])
    versioned = sorted((r for r in glob.glob("/usr/local/cuda-*") if _is_toolkit(r)), key=_version, reverse=True)
    matching = [r for r in versioned if _version(r)[0] == major]
    return (matching or versioned or [None])[0]


def arch_flags(arch_list, cuda_version):
    """nvcc -gencode flags for TORCH_CUDA_ARCH_LIST ("8.0;9.0+PTX": sm_80 and sm_90a machine code, compute_90 PTX),
    and the macros the sources see. Compute capability 9.0 is built as sm_90a (Hopper's wgmma) when the toolkit
    has it (CUDA 12+), and CONV2D_EXT_SM90A tells the host code that the wgmma kernels exist. Given explicitly,
    these flags replace torch's own arch flags."""
    hopper_a = int((cuda_version or "0").split(".")[0]) >= 12
    flags, defines = [], []
    for entry in re.split(r"[;\s]+", arch_list.strip()):
        if not entry:
            continue
        ptx = entry.endswith("+PTX")
        number = entry[:-4] if ptx else entry
        found = re.fullmatch(r"(\d+)\.(\d+)([af]?)", number)
        if found is None:
            sys.exit(f"TORCH_CUDA_ARCH_LIST: cannot read {entry!r} (expected entries such as 8.0, 9.0, 9.0+PTX)")
        cc = found.group(1) + found.group(2)
        suffix = found.group(3) or ("a" if cc == "90" and hopper_a else "")
        flags.append(f"-gencode=arch=compute_{cc}{suffix},code=sm_{cc}{suffix}")
        if cc == "90" and suffix == "a" and ("CONV2D_EXT_SM90A", "1") not in defines:
            defines.append(("CONV2D_EXT_SM90A", "1"))
        if ptx:
            flags.append(f"-gencode=arch=compute_{cc},code=compute_{cc}")
    return flags, defines


cuda_home = find_cuda_home()
if cuda_home is None:
    if BUILD_COMMANDS & set(sys.argv[1:]):
        sys.exit("conv2d_ext needs the CUDA toolkit to build: install it (nvcc's major version must match "
                 f"torch.version.cuda = {torch.version.cuda}) and put its nvcc on PATH, or set CUDA_HOME to the toolkit "
                 "root (the directory holding bin/nvcc).")
    ext_modules, cmdclass = [], {}  # metadata and sdist need no compiler
else:
    os.environ["CUDA_HOME"] = cuda_home  # must be set before torch.utils.cpp_extension is imported
    from torch.utils.cpp_extension import BuildExtension, CUDAExtension

    gencode, defines = arch_flags(os.environ.get("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX"), torch.version.cuda)

    sources = sorted(
        os.path.relpath(path, ROOT)
        for pattern in ("csrc/*.cpp", "csrc/**/*.cu")
        for path in glob.glob(os.path.join(ROOT, pattern), recursive=True)
    )
    ext_modules = [
        CUDAExtension(
            name="conv2d_ext._C",
            sources=sources,
            include_dirs=[os.path.join(ROOT, "csrc")],
            define_macros=defines,
            extra_compile_args={
                "cxx": ["-O3"],
                "nvcc": ["-O3", "-lineinfo", "--expt-relaxed-constexpr", "-Xptxas=-warn-spills", *gencode],
            },
        )
    ]
    cmdclass = {"build_ext": BuildExtension.with_options(use_ninja=True)}

setup(packages=find_packages(include=["conv2d_ext", "conv2d_ext.*"]), ext_modules=ext_modules, cmdclass=cmdclass)
