"""Runtimes a model is deployed with, each turning an eager model into a timed callable.

``RUNTIMES`` maps a name (``bench latency --runtime``) to a ``Runtime``. ``prepare(model, example)``
does the runtime's one-off work (export, quantization, compilation, loading; timed as init) and
returns a ``Prepared``: callable on a CPU fp32 NCHW batch, returning outputs as CPU torch tensors
shaped like eager's, plus ``bind(x)``, the zero-argument call the latency loop times (input already
converted and placed, output left where the runtime puts it).
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import os
import shutil
import tempfile
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from backbones.errors import UserError


@dataclass
class Prepared:
    forward: Callable[[torch.Tensor], Any]
    bind: Callable[[torch.Tensor], Callable[[], Any]]
    device: str = "cpu"
    # Set when the runtime only accepts the batch size it was prepared for.
    static_batch: int | None = None
    # Duration of one call in seconds; None: wall clock.
    timer: Callable[[Callable[[], Any]], float] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # Objects the callables need alive (ExecuTorch reads its program buffer in place).
    keep_alive: Any = None

    def __call__(self, x: torch.Tensor) -> Any:
        return self.forward(x)


class Runtime(ABC):
    name: str
    description: str
    precision: str = "fp32"
    layout: str = "NCHW"
    # Runs on the task's calibration images during prepare (static quantization).
    needs_calibration: bool = False
    # Eager fp32 itself: the accuracy gate's reference.
    is_reference: bool = False

    def unavailable_reason(self) -> str | None:
        """Why this runtime cannot run here (a missing package, no GPU), or None."""
        return None

    def check_available(self) -> None:
        reason = self.unavailable_reason()
        if reason:
            raise UserError(f"--runtime {self.name}: {reason}")

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def prepare(
        self, model: nn.Module, example: torch.Tensor, *, threads: int = 1, calibration: Sequence[torch.Tensor] = ()
    ) -> Prepared: ...


def _missing(module: str, install: str) -> str | None:
    try:
        importlib.import_module(module)
    except ImportError as error:
        return f"needs the {install.split()[0]} package, which is not installed ({error.msg}); install it with: pip install {install}"
    return None


def _to_cpu(outputs: Any) -> Any:
    return pytree.tree_map(lambda t: t.detach().float().cpu() if isinstance(t, torch.Tensor) else t, outputs)


class FlatOutputs(nn.Module):
    """The model with its outputs flattened to a tuple (export formats take tensors, not dicts)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(pytree.tree_leaves(self.model(x)))


@torch.no_grad()
def output_spec(model: nn.Module, example: torch.Tensor) -> pytree.TreeSpec:
    """The structure of eager's outputs, to rebuild it from an exported model's flat outputs."""
    return pytree.tree_flatten(model(example))[1]


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every BatchNorm that directly follows a conv in a Sequential folded
    into that conv's weights (what deployment converters do; eval-mode statistics)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
    return model


# --------------------------------------------------------------------------------------------
# PyTorch eager
# --------------------------------------------------------------------------------------------
class EagerRuntime(Runtime):
    def __init__(self, *, channels_last: bool = False) -> None:
        self.channels_last = channels_last
        self.name = "eager-cl" if channels_last else "eager"
        self.layout = "NHWC (channels_last)" if channels_last else "NCHW"
        self.is_reference = not channels_last
        self.description = (
            "PyTorch eager, fp32, channels_last memory format" if channels_last else "PyTorch eager, fp32, NCHW (the reference)"
        )
        self.format = torch.channels_last if channels_last else torch.contiguous_format

    def version(self) -> str:
        return f"torch {torch.__version__}"

    def prepare(self, model, example, *, threads=1, calibration=()):
        torch.set_num_threads(threads)
        if self.channels_last:
            model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        model.eval()

        def forward(x: torch.Tensor) -> Any:
            with torch.inference_mode():
                return _to_cpu(model(x.contiguous(memory_format=self.format)))

        def bind(x: torch.Tensor) -> Callable[[], Any]:
            x = x.contiguous(memory_format=self.format)

            def call() -> Any:
                with torch.inference_mode():
                    return model(x)

            return call

        return Prepared(forward, bind, details={"torch_threads": torch.get_num_threads()})


# --------------------------------------------------------------------------------------------
# torch.compile (inductor)
# --------------------------------------------------------------------------------------------
class CompileRuntime(Runtime):
    name = "compile"
    description = "torch.compile, inductor backend, weights frozen (constant-folded), fp32"

    def unavailable_reason(self) -> str | None:
        compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
        if not compiler:
            return "torch.compile's inductor backend needs a C++ compiler on PATH (none of c++, g++, clang++ found)"
        return None

    def version(self) -> str:
        return f"torch {torch.__version__} inductor"

    def prepare(self, model, example, *, threads=1, calibration=()):
        torch.set_num_threads(threads)
        model = copy.deepcopy(model).eval()
        # Freezing turns weights into constants so inductor can fold BatchNorm and prepack weights
        # (the recommended setting for CPU inference). Static shapes: one batch size, one graph.
        compiled = torch.compile(model, backend="inductor", dynamic=False, options={"freezing": True})
        with torch.no_grad():
            compiled(example)  # compiles now, so the cost lands in init, not in the first run

        def forward(x: torch.Tensor) -> Any:
            with torch.no_grad():
                return _to_cpu(compiled(x))

        def bind(x: torch.Tensor) -> Callable[[], Any]:
            def call() -> Any:
                with torch.no_grad():
                    return compiled(x)

            return call

        return Prepared(forward, bind, static_batch=example.shape[0], details={"torch_threads": torch.get_num_threads()})


# --------------------------------------------------------------------------------------------
# ONNX Runtime (fp32 and static int8)
# --------------------------------------------------------------------------------------------
OPSET = 17


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> dict[str, Any]:
    """Export with BatchNorm folded, a dynamic batch axis, and check no BatchNormalization is left.

    Uses the TorchScript exporter (``dynamo=False``): it handles these conv nets in seconds and
    needs no onnxscript; constant folding removes what folding in PyTorch left.
    """
    import onnx

    folded = FlatOutputs(fold_batchnorm(model)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            folded,
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            do_constant_folding=True,
            input_names=["input"],
            dynamic_axes={"input": {0: "batch"}},
        )
    graph = onnx.load(str(path)).graph
    batchnorms = sum(node.op_type == "BatchNormalization" for node in graph.node)
    return {"onnx_opset": OPSET, "onnx_nodes": len(graph.node), "batchnorm_nodes_left": batchnorms}


class OnnxCalibration:
    """ONNX Runtime's CalibrationDataReader over the task's calibration images."""

    def __init__(self, batches: Sequence[torch.Tensor]) -> None:
        self.batches = [b.numpy() for b in batches]
        self.index = 0

    def get_next(self) -> dict[str, Any] | None:
        if self.index >= len(self.batches):
            return None
        self.index += 1
        return {"input": self.batches[self.index - 1]}

    def rewind(self) -> None:
        self.index = 0


class OnnxRuntime(Runtime):
    def __init__(self, *, int8: bool = False, cuda: bool = False) -> None:
        self.int8 = int8
        self.cuda = cuda
        self.name = "onnxruntime" + ("-cuda" if cuda else "") + ("-int8" if int8 else "")
        self.precision = "int8" if int8 else "fp32"
        self.needs_calibration = int8
        self.provider = "CUDAExecutionProvider" if cuda else "CPUExecutionProvider"
        if int8:
            self.description = (
                "ONNX Runtime CPU, static int8 (QDQ, per-channel weights), calibrated on the task's images"
            )
        else:
            self.description = f"ONNX Runtime, torch.onnx export with BatchNorm folded, {self.provider}"

    def unavailable_reason(self) -> str | None:
        reason = _missing("onnxruntime", "onnxruntime") or _missing("onnx", "onnx")
        if reason:
            return reason
        import onnxruntime

        if self.provider not in onnxruntime.get_available_providers():
            have = ", ".join(onnxruntime.get_available_providers())
            hint = " (install onnxruntime-gpu and use a machine with an NVIDIA GPU)" if self.cuda else ""
            return f"onnxruntime {onnxruntime.__version__} has no {self.provider} (it has: {have}){hint}"
        return None

    def version(self) -> str:
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"

    def quantize(self, fp32_path: Path, out_path: Path, calibration: Sequence[torch.Tensor]) -> dict[str, Any]:
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        if not calibration:
            raise UserError(f"--runtime {self.name}: no calibration images (the task's validation data is empty)")
        pre_path = fp32_path.with_name("model.pre.onnx")
        quant_pre_process(str(fp32_path), str(pre_path), skip_symbolic_shape=True)
        # The layers that produce the outputs (classifier, box and class predictors) stay fp32: logits
        # quantized to 8 bits lose the small margins between the top classes, and these layers are a
        # sliver of the compute (the usual "last layer in higher precision" of post-training quantization).
        output_layers = output_producers(onnx.load(str(pre_path)).graph)
        # x86 without VNNI: 7-bit weights avoid int16 saturation in the u8 x s8 kernels
        # (ONNX Runtime's guidance); with VNNI the full range is safe.
        vnni = _cpu_has_vnni()
        quantize_static(
            str(pre_path),
            str(out_path),
            OnnxCalibration(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=not vnni,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # Every intermediate output of every calibration batch is kept in memory until the end
            # (ONNX Runtime's CalibMaxIntermediateOutputs would bound it, but drops the data it
            # clears), so memory grows with images x pixels: keep --calibration-images modest at 513.
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=output_layers,
        )
        graph = onnx.load(str(out_path)).graph
        return {
            "quantization": "static QDQ, per-channel int8 weights, uint8 activations, MinMax calibration",
            "reduce_range": not vnni,
            "fp32_output_layers": len(output_layers),
            "quantize_nodes": sum(node.op_type == "QuantizeLinear" for node in graph.node),
            "dequantize_nodes": sum(node.op_type == "DequantizeLinear" for node in graph.node),
        }

    def prepare(self, model, example, *, threads=1, calibration=()):
        import onnxruntime

        spec = output_spec(model.eval(), example)
        details: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="bench-onnx-") as folder:
            path = Path(folder) / "model.onnx"
            details.update(export_onnx(model, example, path))
            if self.int8:
                quantized = Path(folder) / "model.int8.onnx"
                details.update(self.quantize(path, quantized, calibration))
                path = quantized
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = onnxruntime.InferenceSession(str(path), options, providers=[self.provider])
        details.update(providers=session.get_providers(), intra_op_num_threads=threads)
        device = "cuda" if self.cuda else "cpu"

        def forward(x: torch.Tensor) -> Any:
            outputs = session.run(None, {"input": x.detach().cpu().float().numpy()})
            return pytree.tree_unflatten([torch.from_numpy(o) for o in outputs], spec)

        def bind(x: torch.Tensor) -> Callable[[], Any]:
            array = x.detach().cpu().float().contiguous().numpy()
            return lambda: session.run(None, {"input": array})

        return Prepared(forward, bind, device=device, details=details)


# Ops that only move, reshape or resample data: the search for the output layers passes through them.
DATA_MOVEMENT = {"Reshape", "Transpose", "Concat", "Flatten", "Resize", "Identity", "Squeeze", "Unsqueeze", "Slice",
                 "Split", "Gather", "Cast", "Softmax", "Sigmoid"}  # fmt: skip


def output_producers(graph: Any) -> list[str]:
    """Names of the compute nodes whose results reach a graph output through data movement only."""
    producer = {output: node for node in graph.node for output in node.output}
    found: list[str] = []
    stack = [output.name for output in graph.output]
    seen: set[str] = set()
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in DATA_MOVEMENT:
            stack.extend(node.input)
        else:
            found.append(node.name)
    return found


def _cpu_has_vnni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


# --------------------------------------------------------------------------------------------
# CUDA eager (fp32, fp16, bf16)
# --------------------------------------------------------------------------------------------
class CudaRuntime(Runtime):
    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        self.dtype = dtype
        label = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
        self.name = "cuda" if dtype == torch.float32 else f"cuda-{label}"
        self.precision = label
        self.description = f"PyTorch eager on the GPU, {label} weights and activations, timed with CUDA events"

    def unavailable_reason(self) -> str | None:
        if not torch.cuda.is_available():
            return "no CUDA GPU is visible to torch (torch.cuda.is_available() is False)"
        if self.dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            return f"{torch.cuda.get_device_name(0)} does not support bf16"
        return None

    def version(self) -> str:
        return f"torch {torch.__version__} CUDA {torch.version.cuda}"

    def prepare(self, model, example, *, threads=1, calibration=()):
        torch.set_num_threads(threads)
        model = copy.deepcopy(model).eval().to("cuda", self.dtype)

        def forward(x: torch.Tensor) -> Any:
            with torch.inference_mode():
                return _to_cpu(model(x.to("cuda", self.dtype)))

        def bind(x: torch.Tensor) -> Callable[[], Any]:
            x = x.to("cuda", self.dtype)

            def call() -> Any:
                with torch.inference_mode():
                    return model(x)

            return call

        def timer(call: Callable[[], Any]) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            call()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0

        return Prepared(forward, bind, device="cuda", timer=timer, details={"gpu": torch.cuda.get_device_name(0)})


# --------------------------------------------------------------------------------------------
# ExecuTorch (XNNPACK delegate)
# --------------------------------------------------------------------------------------------
class ExecuTorchRuntime(Runtime):
    name = "executorch"
    description = "ExecuTorch with the XNNPACK delegate, fp32 (what PyTorch models ship with on phones)"

    def unavailable_reason(self) -> str | None:
        reason = _missing("executorch.runtime", "executorch torchao")
        if reason:
            return reason
        try:
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner  # noqa: F401
            from executorch.exir import to_edge_transform_and_lower  # noqa: F401
        except ImportError as error:
            return f"executorch is installed but its XNNPACK exporter does not import ({error.msg}); pip install torchao"
        return None

    def version(self) -> str:
        try:
            return f"executorch {importlib.metadata.version('executorch')}"
        except importlib.metadata.PackageNotFoundError:
            return "executorch (unknown version)"

    def prepare(self, model, example, *, threads=1, calibration=()):
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        from executorch.runtime import Runtime as EtRuntime

        spec = output_spec(model.eval(), example)
        flat = FlatOutputs(fold_batchnorm(model)).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = torch.export.export(flat, (example,))
            program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
        _unsafe_reset_threadpool(threads)
        # The loaded program reads this buffer in place: it must stay alive as long as the method
        # (a temporary ``program.buffer`` is freed at once and the runtime then crashes).
        buffer = program.buffer
        loaded = EtRuntime.get().load_program(buffer)
        method = loaded.load_method("forward")

        def forward(x: torch.Tensor) -> Any:
            return pytree.tree_unflatten([t.clone() for t in method.execute([x.contiguous()])], spec)

        def bind(x: torch.Tensor) -> Callable[[], Any]:
            x = x.contiguous()
            return lambda: method.execute([x])

        details = {"program_bytes": len(buffer), "delegate": "XnnpackPartitioner", "threadpool": threads}
        return Prepared(forward, bind, static_batch=example.shape[0], details=details, keep_alive=(buffer, loaded))


RUNTIMES: dict[str, Runtime] = {
    runtime.name: runtime
    for runtime in (
        EagerRuntime(),
        EagerRuntime(channels_last=True),
        CompileRuntime(),
        OnnxRuntime(),
        OnnxRuntime(int8=True),
        OnnxRuntime(cuda=True),
        CudaRuntime(),
        CudaRuntime(torch.float16),
        CudaRuntime(torch.bfloat16),
        ExecuTorchRuntime(),
        importlib.import_module("benchmark.rt_litert").LiteRtRuntime(),
        importlib.import_module("benchmark.rt_litert").LiteRtRuntime(int8=True),
        importlib.import_module("benchmark.rt_openvino").OpenVinoRuntime(),
        importlib.import_module("benchmark.rt_openvino").OpenVinoRuntime(int8=True),
    )
}


def get_runtime(name: str) -> Runtime:
    if name not in RUNTIMES:
        raise UserError(f"--runtime: unknown runtime {name!r}; choose from {', '.join(RUNTIMES)}")
    return RUNTIMES[name]


def parse_runtimes(text: str) -> tuple[str, ...]:
    """``eager,onnxruntime`` -> names, checked against the registry, duplicates dropped."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UserError("--runtime: give at least one runtime name")
    for name in names:
        get_runtime(name)
    return tuple(dict.fromkeys(names))
