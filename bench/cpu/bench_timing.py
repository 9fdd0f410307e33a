"""The timing rule the Python engines of bench/cpu/run.sh share (torch_bench.py,
peer_bench.py; Lookalike's embedder_bench.cc does the same in C++): one
untimed warm-up call, then `reps` timed calls, each measured in wall time and
in process CPU time (all threads). Standard library only: it runs in the
project's environment and in the peers' own."""
import time


def time_calls(fn, reps):
    """Returns (wall ms per call, process CPU ms per call), `reps` each."""
    fn()  # warm-up
    ms, cpu = [], []
    for _ in range(reps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return ms, cpu
