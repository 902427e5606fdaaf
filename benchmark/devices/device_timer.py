"""The suite's device-side timing script: pushed to the target and run there by its own Python.

Standalone on purpose (stdlib + numpy + the runtime's own package: ai_edge_litert, onnxruntime or
openvino): it must not import the suite, which is not on the device. It times one exported file the
way ``benchmark.latency.timing.run_timed`` does locally (a first run, warm-up runs AND seconds, then
timed runs until both --min-runs and --min-s are reached, --max-s caps) and the call is the same as
the local runtime's bound call (set the prepared input, invoke). Prints one JSON line: per-run
microseconds, first run, warm-up count, versions. With --inputs FILE.npy (a batch of N images) it
instead runs them one at a time (the exported file's batch is 1) and writes the stacked outputs,
in the model's order, to --outputs FILE.npz as output_0, output_1, ... (the accuracy gate's path).
"""

import argparse
import json
import os
import platform
import re
import sys
import time

import numpy as np


def output_order(interpreter):
    """The output details in the model's order (as benchmark.latency.runtimes.litert): litert-torch
    names them output_0, output_1, ... in its signature; without one, the interpreter's order."""
    details = {d["index"]: d for d in interpreter.get_output_details()}
    signatures = interpreter._get_full_signature_list()
    if not signatures:
        return list(details.values())
    named = next(iter(signatures.values()))["outputs"]
    number = lambda name: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]  # noqa: E731
    return [details[named[name]] for name in sorted(named, key=number)]


def quantize_input(array, scale, zero_point, dtype):
    """benchmark.latency.runtimes.litert.quantize_input (TFLite's QUANTIZE: float32 x / scale, half
    away from zero, plus the zero point, clamped); a copy, as this script imports nothing of the suite."""
    limits = np.iinfo(dtype)
    steps = (array.astype(np.float32) / np.float32(scale)).astype(np.float64)
    rounded = np.sign(steps) * np.floor(np.abs(steps) + 0.5)
    return np.ascontiguousarray(np.clip(rounded + zero_point, limits.min, limits.max).astype(dtype))


def load_tflite(path, threads):
    from ai_edge_litert import __version__ as version
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=open(path, "rb").read(), num_threads=threads)
    interpreter.allocate_tensors()
    (detail,) = interpreter.get_input_details()
    outputs = output_order(interpreter)
    nhwc = len(detail["shape"]) == 4 and detail["shape"][-1] in (1, 3) and detail["shape"][1] not in (1, 3)
    ops = [op["op_name"] for op in interpreter._get_ops_details()]

    def convert(x):
        if nhwc and x.shape[1] in (1, 3):
            x = x.transpose(0, 2, 3, 1)
        scale, zero = detail["quantization"]
        if np.dtype(detail["dtype"]).kind in "iu" and scale:
            return quantize_input(x, scale, zero, detail["dtype"])
        return np.ascontiguousarray(x.astype(detail["dtype"]))

    def bind(x):
        array = convert(x)

        def call():
            interpreter.set_tensor(detail["index"], array)
            interpreter.invoke()

        return call

    def forward(x):
        bind(x)()
        result = []
        for out in outputs:
            value = interpreter.get_tensor(out["index"]).astype(np.float32)
            scale, zero = out["quantization"]
            if np.dtype(out["dtype"]).kind in "iu" and scale:
                value = (value - zero) * scale
            result.append(value)
        return result

    return bind, forward, "ai_edge_litert " + version, {"delegate_nodes": ops.count("DELEGATE")}


def load_onnx(path, threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def bind(x):
        binding = session.io_binding()
        value = onnxruntime.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x, dtype=np.float32), "cpu", 0)
        binding.bind_ortvalue_input(name, value)
        for output in session.get_outputs():
            binding.bind_output(output.name, "cpu", 0)

        def call(_value=value):
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()

        return call

    def forward(x):
        return session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})

    return bind, forward, "onnxruntime " + onnxruntime.__version__, {"providers": session.get_providers()}


def load_openvino(path, threads):
    import openvino

    core = openvino.Core()
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
    compiled = core.compile_model(core.read_model(path), "CPU", config)
    request = compiled.create_infer_request()

    def bind(x):
        tensor = openvino.Tensor(np.ascontiguousarray(x, dtype=np.float32))

        def call():
            request.set_input_tensor(tensor)
            request.infer()

        return call

    def forward(x):
        results = request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        return [np.asarray(results[out]) for out in compiled.outputs]

    details = {"num_streams": int(compiled.get_property("NUM_STREAMS"))}
    return bind, forward, "openvino " + openvino.__version__, details


LOADERS = {".tflite": load_tflite, ".onnx": load_onnx, ".xml": load_openvino}


def run_timed(call, warmup_runs, warmup_s, min_runs, min_s, max_s):
    """benchmark.latency.timing.run_timed, with perf_counter around each call."""
    clock = time.perf_counter

    def timed():
        start = clock()
        call()
        return clock() - start

    warmup_start = clock()
    first = timed()
    warmups = 1
    while warmups < warmup_runs or clock() - warmup_start < warmup_s:
        timed()
        warmups += 1
    durations = []
    start = clock()
    while True:
        durations.append(timed())
        elapsed = clock() - start
        if len(durations) >= min_runs and elapsed >= min_s:
            break
        if max_s is not None and elapsed >= max_s:
            break
    return first, warmups, durations, clock() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", help=".npy input batch (NCHW float32); default: zeros of the model's shape")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup-runs", type=int, default=5)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--min-runs", type=int, default=50)
    parser.add_argument("--min-s", type=float, default=3.0)
    parser.add_argument("--max-s", type=float)
    parser.add_argument("--inputs", help=".npy batch of images to run one by one (accuracy), instead of timing")
    parser.add_argument("--outputs", help=".npz file for the outputs of --inputs")
    args = parser.parse_args(argv)
    suffix = os.path.splitext(args.model)[1]
    if suffix not in LOADERS:
        print(json.dumps({"error": f"unknown model suffix {suffix!r}"}))
        return 2
    load_start = time.perf_counter()
    bind, forward, version, details = LOADERS[suffix](args.model, args.threads)
    init_us = (time.perf_counter() - load_start) * 1e6
    info = {"tool": "bench-device-timer", "runtime_version": version, "python": platform.python_version(),
            "numpy": np.__version__, "init_us": init_us, "details": details}
    if args.inputs:
        batch = np.load(args.inputs)
        results = [forward(batch[i : i + 1]) for i in range(batch.shape[0])]
        stacked = {f"output_{k}": np.concatenate([np.asarray(r[k]) for r in results]) for k in range(len(results[0]))}
        np.savez(args.outputs, **stacked)
        print(json.dumps(dict(info, images=int(batch.shape[0]))))
        return 0
    x = np.load(args.input)
    first, warmups, durations, duration = run_timed(
        bind(x), args.warmup_runs, args.warmup_s, args.min_runs, args.min_s, args.max_s
    )
    print(json.dumps(dict(info, first_us=first * 1e6, warmup_runs=warmups, duration_s=duration,
                          runs_us=[d * 1e6 for d in durations])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
