"""Timers: GPU time of a function by CUDA events or by CUDA-graph replay (compare.py, kernel_times.py), host
wall-clock time per call (overhead.py)."""
import statistics
import time

import torch


def gpu_ms(fn, target_s, min_reps=3, max_reps=200):
    """Median GPU time of fn() in ms, with CUDA events: {"ms", "min_ms", "reps"}.

    One warm-up call (which also runs cudnn.benchmark's autotuning), a short estimate, then enough reps for about
    target_s of measurement, each between its own pair of events, with no sync between reps (so host launch time
    is hidden unless it exceeds the GPU time). The same tensors are reused, so small cases may run partly out of
    L2; L2 is not flushed between reps.
    """
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def average_ms(calls):
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / calls

    estimate = average_ms(1)
    if estimate < 1.0:  # a short function: average a few calls for a better estimate
        estimate = average_ms(5)
    reps = int(min(max_reps, max(min_reps, target_s * 1e3 / max(estimate, 1e-3))))
    times = event_times(fn, reps)
    return {"ms": statistics.median(times), "min_ms": min(times), "reps": reps}


def event_times(fn, reps):
    """ms of each of `reps` fn() calls, each between its own pair of CUDA events, with no sync between the calls."""
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for s, e in events:
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in events]


def graph_ms(make_fn, calls=20, rounds=7, replays=5):
    """Stream time of one call in ms from CUDA-graph replays: {"ms" (median over `rounds`), "min_ms", "reps"}.

    make_fn() builds the call on the side stream that captures it (a backward's forward runs there, so its backward
    kernels do too); three warm-up calls (cudnn.benchmark autotunes in the first), then a graph of `calls` calls,
    each round timed by events around `replays` replays. No host time (what events measure for calls whose host
    time passes their GPU time), kernels that overlap (programmatic dependent launch) count once, gaps between a
    call's kernels count. Raises RuntimeError where the call cannot be captured.
    """
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn = make_fn()
        for _ in range(3):
            fn()
    stream.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        for _ in range(calls):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(replays):
            graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / (replays * calls))
    del graph
    return {"ms": statistics.median(times), "min_ms": min(times), "reps": rounds * replays * calls}


def host_ms(fn, calls=100):
    """Host wall-clock ms per fn() call: `calls` calls timed before the synchronize that ends them, so host time even
    where the GPU time is longer (host_us below stops its clock after the synchronize). Few enough calls that the
    launch queue does not fill."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed / calls * 1e3


def host_us(fns, iters, repeats, warmup):
    """Wall-clock µs per call of each function in `fns` (a dict name -> fn): the median over `repeats` runs of
    `iters` calls, with torch.cuda.synchronize() only before and after each run. The functions take turns within
    each repeat, so drifting clocks affect them alike. For kernels of a few µs this is host time."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    torch.cuda.synchronize()
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            torch.cuda.synchronize()
            samples[name].append((time.perf_counter() - t0) / iters * 1e6)
    return {name: {"us": statistics.median(s), "min_us": min(s)} for name, s in samples.items()}
