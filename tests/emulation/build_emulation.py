"""Builds kernels of csrc/ for the CPU emulator (emu.h) with the host compiler: copies csrc/ into a build folder with
each `kernel<<<grid, block, smem, stream>>>(args);` rewritten to emu::launch(...) and each dynamic __shared__ array
to a pointer at emu::dynamic_smem(), then compiles the chosen sources with a harness. No GPU, no nvcc.

    python3 tests/emulation/build_emulation.py OUT_BINARY HARNESS.cpp [SOURCE.cu... | all]   (relative to csrc/)
"""
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

DYNAMIC_SMEM = re.compile(r"extern __shared__\s+(?:__align__\(\d+\)\s+)?([\w:]+(?: [\w:]+)*)\s+(\w+)\[\];")


def _balanced(text, i, open_, close):
    """The index just past the bracket that closes the one at text[i] (== open_)."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == open_:
            depth += 1
        elif text[j] == close:
            depth -= 1
            if depth == 0:
                return j + 1
    raise ValueError(f"unbalanced {open_} at {i}")


def _in_comment(text, i):
    line_start = text.rfind("\n", 0, i) + 1
    return "//" in text[line_start:i]


def rewrite_launches(text):
    """kernel<<<a, b, c, d>>>(args); (over any number of lines) -> ::emu::launch(a, b, c, d, [&] { kernel(args); });"""
    out, pos = [], 0
    while True:
        i = text.find("<<<", pos)
        if i < 0:
            break
        if _in_comment(text, i):
            out.append(text[pos:i + 3])
            pos = i + 3
            continue
        # the callee: an identifier (with ::), then template arguments <...> if the launch follows a '>'
        start = i
        if text[start - 1] == ">":
            depth = 0
            for j in range(start - 1, -1, -1):
                depth += text[j] == ">"
                depth -= text[j] == "<"
                if depth == 0:
                    start = j
                    break
        while start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_:"):
            start -= 1
        end_config = text.index(">>>", i)
        config = text[i + 3:end_config]
        args_open = text.index("(", end_config)
        args_close = _balanced(text, args_open, "(", ")")
        semicolon = text.index(";", args_close)
        callee, args = text[start:i], text[args_open + 1:args_close - 1]
        out.append(text[pos:start])
        out.append(f"::emu::launch({config}, [&] {{ {callee}({args}); }});")
        pos = semicolon + 1
    out.append(text[pos:])
    return "".join(out)


def rewrite(text):
    text = rewrite_launches(text)
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


def all_sources():
    """Every kernel source and the registry (not the Python binding), relative to csrc/."""
    src = os.path.join(ROOT, "csrc")
    out = []
    for folder, _, files in os.walk(src):
        for f in files:
            if f.endswith(".cu") or f == "registry.cpp":
                out.append(os.path.relpath(os.path.join(folder, f), src))
    return sorted(out)


def default_jobs():
    """Parallel jobs: MAX_JOBS, else the CPU count (the builds' compiles, test_emulation's harness runs)."""
    return int(os.environ.get("MAX_JOBS", "0")) or os.cpu_count() or 2


def build(binary, harness, sources, workdir=None, sanitize=False, jobs=None):
    """Compiles `sources` (relative to csrc/; "all": all_sources()) and the harness into `binary`, objects in
    parallel (jobs: MAX_JOBS or the CPU count); an object is reused while it is newer than its rewritten source and
    every header it included (copy_sources rewrites only the files whose text changed)."""
    workdir = workdir or os.path.join(os.path.dirname(os.path.abspath(binary)), "emu_src")
    copy_sources(workdir)
    if sources == "all":
        sources = all_sources()
    includes, lib = torch_paths()
    flags = ["g++", "-std=c++17", "-O1", "-g1", "-fno-strict-aliasing", "-DCONV2D_EXT_EMULATION=1",
             "-DCONV2D_EXT_SM90A=1", "-Wno-attributes", "-include", os.path.join(HERE, "emu.h"), "-I", HERE,
             "-I", workdir, "-I", cuda_include()]
    for inc in includes:
        flags += ["-isystem", inc]
    if sanitize:  # out-of-bounds global and shared memory (each launch's dynamic shared memory is its own allocation)
        flags += ["-fsanitize=address", "-fno-omit-frame-pointer"]
    if os.environ.get("EMU_DEBUG") == "1":
        flags.append("-g")  # variables for gdb (-g1, the line tables, costs nothing; -g a third to a half more time)
    objdir = os.path.join(workdir, "obj_asan" if sanitize else "obj")
    os.makedirs(objdir, exist_ok=True)
    inputs = [(os.path.join(workdir, s), os.path.join(objdir, s.replace("/", "_") + ".o")) for s in sources]
    inputs += [(h, os.path.join(objdir, os.path.basename(h) + ".o")) for h in harness.split(",")]  # a harness, stubs
    inputs += [(os.path.join(HERE, "emulation_runtime.cpp"), os.path.join(objdir, "emulation_runtime.o"))]

    def up_to_date(src, obj):
        """The object is newer than its source and every file it included (g++'s dependency file, -MMD)."""
        deps = obj[:-2] + ".d"
        if not (os.path.exists(obj) and os.path.exists(deps)):
            return False
        with open(deps) as fh:
            files = fh.read().replace("\\\n", " ").split(":", 1)[-1].split()
        try:
            return all(os.path.getmtime(obj) >= os.path.getmtime(f) for f in [src] + files)
        except OSError:  # a dependency gone
            return False

    def compile_one(item):
        src, obj = item
        if up_to_date(src, obj):
            return None
        r = subprocess.run(flags + ["-MMD", "-MF", obj[:-2] + ".d", "-x", "c++", "-c", src, "-o", obj],
                           capture_output=True, text=True)
        return None if r.returncode == 0 else f"{src}:\n{r.stderr[-4000:]}"

    import concurrent.futures
    jobs = jobs or default_jobs()
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        errors = [e for e in pool.map(compile_one, inputs) if e]
    if errors:
        raise RuntimeError("emulation build failed:\n" + "\n".join(errors))
    link = ["g++", "-o", binary] + [obj for _, obj in inputs] + ["-L", lib, "-lc10", f"-Wl,-rpath,{lib}"]
    if sanitize:
        link.append("-fsanitize=address")
    subprocess.run(link, check=True)
    return binary


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    sources = sys.argv[3:] if sys.argv[3:] != ["all"] else "all"
    build(sys.argv[1], sys.argv[2], sources, sanitize=os.environ.get("EMU_ASAN") == "1")
