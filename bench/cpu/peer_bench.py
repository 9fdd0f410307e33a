"""ONNX Runtime and OpenVINO peers for the CPU engine benchmark
(bench/cpu/run.sh --peers). Runs in the benchmark's own virtual environment
(bench/cpu/.venv-peers, pins in bench/cpu/requirements-peers.txt), on the
ONNX file torch_bench.py export-onnx wrote from the same weights.

  peer_bench.py --engine onnxruntime|openvino --model M --onnx M.onnx
                [--check M.check.npz] --threads T --batches 1,16 --reps R

Both engines: fp32, `threads` intra-op threads, one stream / sequential
execution, the whole-graph optimizations they apply by default. With
OMP_WAIT_POLICY=passive in the environment (what the libgomp engines,
Lookalike and PyTorch, then use) ONNX Runtime's pool does not spin either
(session.intra_op.allow_spinning 0); OpenVINO (TBB) runs as it is.
ONNX Runtime: one InferenceSession (ORT_ENABLE_ALL), dynamic batch.
OpenVINO: the model reshaped to each batch size and compiled for "CPU" with
INFERENCE_PRECISION_HINT f32, PERFORMANCE_HINT LATENCY, NUM_STREAMS 1 (so its
CPU plugin may not switch to bf16 on CPUs that have it).
Timing as torch_bench.py's: one untimed warm-up per batch size, then the
median of R timed calls on a preprocessed {B, 3, 224, 224} batch (wall and
process CPU time). --check: the embeddings of the exported fixed input are
compared with PyTorch's; the max abs difference goes into the first JSON line.
"""
import argparse
import json
import os
import resource
import statistics

import numpy as np

from bench_timing import time_calls


def make_runner(engine, onnx_path, threads):
    """Returns (version, run(batch) -> fn(x) -> embeddings)."""
    if engine == "onnxruntime":
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if os.environ.get("OMP_WAIT_POLICY", "").lower() == "passive":
            # The libgomp engines' OMP_WAIT_POLICY=passive, in ORT's own pool.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name

        def for_batch(_batch):
            return lambda x: sess.run(None, {name: x})[0]
        return ort.__version__, for_batch
    if engine == "openvino":
        import openvino as ov
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
                  "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}

        def for_batch(batch):
            model = core.read_model(onnx_path)
            model.reshape([batch, 3, 224, 224])
            compiled = core.compile_model(model, "CPU", config)
            request = compiled.create_infer_request()

            def run(x):
                request.infer({0: x})
                return request.get_output_tensor(0).data
            return run
        return ov.__version__, for_batch
    raise SystemExit(f"unknown engine {engine}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True, choices=["onnxruntime", "openvino"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--check")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    version, for_batch = make_runner(args.engine, args.onnx, args.threads)
    diff = None
    if args.check:
        ref = np.load(args.check)
        x = ref["images"]
        got = np.array(for_batch(x.shape[0])(x))
        diff = float(np.max(np.abs(got - ref["embeddings"])))
    for b in [int(v) for v in args.batches.split(",")]:
        x = np.random.default_rng(b).standard_normal((b, 3, 224, 224), dtype=np.float32)
        fn = for_batch(b)
        ms, cpu = time_calls(lambda: fn(x), args.reps)
        med = statistics.median(ms)
        row = {"impl": args.engine, "model": args.model, "batch": b, "threads": args.threads,
               "images_per_s": round(b * 1e3 / med, 3), "ms_per_batch": round(med, 2),
               "best_ms": round(min(ms), 2), "cpu_ms_per_batch": round(statistics.median(cpu), 2),
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               "version": version}
        if diff is not None:
            row["max_abs_diff_vs_pytorch"] = diff
            diff = None
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
