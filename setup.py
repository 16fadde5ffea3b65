"""Build conv2d_ext._C, one CUDA extension compiled from every source under csrc/.

Environment:
  CUDA_HOME             CUDA toolkit root. When unset it is found from the `nvcc` on PATH, following wrapper
                        scripts that exec the real compiler.
  TORCH_CUDA_ARCH_LIST  GPU architectures to build for (default "8.0;9.0+PTX": A100 and H100 machine code, and PTX
                        that newer GPUs compile at load time).
  MAX_JOBS              parallel compile jobs (ninja), default: the number of CPUs.
"""
import glob
import os
import re
import shutil

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def find_cuda_home():
    """The toolkit root: $CUDA_HOME, else the directory holding the real nvcc behind the one on PATH."""
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    nvcc = shutil.which("nvcc")
    for _ in range(4):  # follow up to a few wrapper scripts ("exec /usr/local/cuda-X/bin/nvcc "$@"")
        if nvcc is None:
            break
        nvcc = os.path.realpath(nvcc)
        root = os.path.dirname(os.path.dirname(nvcc))
        if os.path.exists(os.path.join(root, "include", "cuda_runtime.h")):
            return root
        with open(nvcc, "rb") as f:
            head = f.read(4096)
        match = re.search(rb"(/\S+/bin/nvcc)\b", head) if head.startswith(b"#!") else None
        nvcc = match.group(1).decode() if match else None
    for root in sorted(glob.glob("/usr/local/cuda*"), reverse=True):
        if os.path.exists(os.path.join(root, "bin", "nvcc")):
            return root
    return None


cuda_home = find_cuda_home()
if cuda_home is None:
    raise RuntimeError(
        "conv2d_ext needs the CUDA toolkit to build: install it (nvcc must match the CUDA major version of your "
        "torch build) and put its nvcc on PATH, or set CUDA_HOME to the toolkit root (the directory holding bin/nvcc)."
    )
os.environ["CUDA_HOME"] = cuda_home  # must be set before torch.utils.cpp_extension is imported
os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")

from torch.utils.cpp_extension import BuildExtension, CUDAExtension  # noqa: E402

sources = sorted(
    os.path.relpath(path, ROOT)
    for pattern in ("csrc/*.cpp", "csrc/**/*.cu")
    for path in glob.glob(os.path.join(ROOT, pattern), recursive=True)
)

setup(
    packages=find_packages(include=["conv2d_ext", "conv2d_ext.*"]),
    ext_modules=[
        CUDAExtension(
            name="conv2d_ext._C",
            sources=sources,
            include_dirs=[os.path.join(ROOT, "csrc")],
            extra_compile_args={
                "cxx": ["-O3"],
                "nvcc": ["-O3", "-lineinfo", "--expt-relaxed-constexpr", "-Xptxas=-warn-spills"],
            },
        )
    ],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
