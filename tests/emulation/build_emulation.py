"""Builds kernels of csrc/ for the CPU emulator (emu.h) with the host compiler: copies csrc/ into a build folder with
each `kernel<<<grid, block, smem, stream>>>(args);` rewritten to emu::launch(...) and each dynamic __shared__ array
to a pointer at emu::dynamic_smem(), then compiles the chosen sources with a harness. No GPU, no nvcc.

    python3 tests/emulation/build_emulation.py OUT_BINARY HARNESS.cpp [SOURCE.cu...]   (sources relative to csrc/)
"""
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

LAUNCH = re.compile(r"([\w:]+(?:<[^;<>]*(?:<[^;<>]*>[^;<>]*)*>)?)<<<(.*?)>>>\((.*?)\);")
DYNAMIC_SMEM = re.compile(r"extern __shared__\s+(?:__align__\(\d+\)\s+)?([\w:]+(?: [\w:]+)*)\s+(\w+)\[\];")


def rewrite_launch(line):
    code, slashes, comment = line.partition("//")
    code = LAUNCH.sub(lambda m: f"::emu::launch({m.group(2)}, [&] {{ {m.group(1)}({m.group(3)}); }});", code)
    return code + slashes + comment


def rewrite(text):
    text = "\n".join(rewrite_launch(line) for line in text.split("\n"))
    text = DYNAMIC_SMEM.sub(lambda m: f"{m.group(1)}* {m.group(2)} = reinterpret_cast<{m.group(1)}*>("
                                      f"::emu::dynamic_smem());", text)
    return text.replace("#include <c10/cuda/CUDAException.h>", '#include "c10_cuda_exception.h"')


def copy_sources(dst):
    src = os.path.join(ROOT, "csrc")
    for folder, _, files in os.walk(src):
        out = os.path.join(dst, os.path.relpath(folder, src))
        os.makedirs(out, exist_ok=True)
        for f in files:
            with open(os.path.join(folder, f)) as fh:
                text = fh.read()
            target = os.path.join(out, f)
            new = rewrite(text)
            if not os.path.exists(target) or open(target).read() != new:
                with open(target, "w") as fh:
                    fh.write(new)


def torch_paths():
    import torch
    root = os.path.dirname(torch.__file__)
    return [os.path.join(root, "include"), os.path.join(root, "include", "torch", "csrc", "api", "include")], \
        os.path.join(root, "lib")


def cuda_include():
    for root in (os.environ.get("CUDA_HOME", ""), "/usr/local/cuda", "/usr/local/cuda-13.0"):
        if root and os.path.exists(os.path.join(root, "include", "cuda_runtime.h")):
            return os.path.join(root, "include")
    raise SystemExit("emulation: no CUDA toolkit headers (cuda_runtime.h) found")


def build(binary, harness, sources, workdir=None, sanitize=False):
    workdir = workdir or os.path.join(os.path.dirname(os.path.abspath(binary)), "emu_src")
    copy_sources(workdir)
    includes, lib = torch_paths()
    cmd = ["g++", "-std=c++17", "-O1", "-g", "-fno-strict-aliasing", "-DCONV2D_EXT_EMULATION=1",
           "-Wno-attributes", "-include", os.path.join(HERE, "emu.h"), "-I", HERE, "-I", workdir,
           "-I", cuda_include()]
    for inc in includes:
        cmd += ["-isystem", inc]
    cmd += ["-x", "c++"] + [os.path.join(workdir, s) for s in sources] + ["-x", "c++", harness,
                                                                        os.path.join(HERE, "emulation_runtime.cpp")]
    if sanitize:  # out-of-bounds global and shared memory (each launch's dynamic shared memory is its own allocation)
        cmd += ["-fsanitize=address", "-fno-omit-frame-pointer"]
    cmd += ["-o", binary, "-L", lib, "-lc10", f"-Wl,-rpath,{lib}"]
    subprocess.run(cmd, check=True)
    return binary


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    build(sys.argv[1], sys.argv[2], sys.argv[3:], sanitize=os.environ.get("EMU_ASAN") == "1")
