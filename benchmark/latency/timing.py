"""On-device latency: the timing loop, its statistics, the accuracy gate, and the frozen record.

Methodology after TFLite's ``benchmark_model`` and MLPerf Mobile (see
shared/reference/paper-numbers.md, "What MLPerf Mobile and TFLite do for latency"): a first run,
warm-up runs for at least N runs and T seconds, then timed runs until both a run count and a
duration are reached; count, first, min, mean, std and percentiles are reported with the context
the number depends on (runtime and version, threads, batch, resolution, precision, layout).
"""

from __future__ import annotations

import gc
import math
import random
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from backbones.errors import UserError

Clock = Callable[[], float]
# Runs one call and returns its duration in seconds (wall clock by default, CUDA events on a GPU).
Timer = Callable[[Callable[[], Any]], float]


# --------------------------------------------------------------------------------------------
# Tiers: how long to warm up and measure
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tier:
    """Warm-up and measurement lengths; both the run count and the duration must be reached.

    ``max_s`` stops the timed phase early, like TFLite's ``max_secs`` (``None``: no cap, as MLPerf).
    """

    name: str
    warmup_runs: int
    warmup_s: float
    min_runs: int
    min_s: float
    max_s: float | None = None

    def __post_init__(self) -> None:
        if self.warmup_runs < 0 or self.min_runs < 1 or self.warmup_s < 0 or self.min_s < 0:
            raise UserError(f"tier {self.name}: run counts and seconds must be >= 0 (>= 1 timed run)")


TIERS = {
    # MLPerf Mobile single-stream: at least 1024 queries and 60 s.
    "normal": Tier("normal", warmup_runs=10, warmup_s=2.0, min_runs=1024, min_s=60.0),
    # For CI and quick looks: a few seconds (TFLite's defaults are 50 runs, 1 s minimum).
    "quick": Tier("quick", warmup_runs=5, warmup_s=1.0, min_runs=50, min_s=3.0, max_s=20.0),
}


# --------------------------------------------------------------------------------------------
# Timing loop (clock and timer injectable, so it runs on a fake clock in tests)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timings:
    """Raw durations of one measurement, in seconds."""

    first_s: float
    warmup_runs: int
    durations_s: tuple[float, ...]
    duration_s: float


def wall_timer(clock: Clock = time.perf_counter) -> Timer:
    def timer(call: Callable[[], Any]) -> float:
        start = clock()
        call()
        return clock() - start

    return timer


def run_timed(call: Callable[[], Any], tier: Tier, *, clock: Clock = time.perf_counter, timer: Timer | None = None) -> Timings:
    """First run, warm-up (runs and seconds, the first included), then the timed runs."""
    timer = timer or wall_timer(clock)
    warmup_start = clock()
    first = timer(call)
    warmup_runs = 1
    while warmup_runs < tier.warmup_runs or clock() - warmup_start < tier.warmup_s:
        timer(call)
        warmup_runs += 1
    durations: list[float] = []
    start = clock()
    while True:
        durations.append(timer(call))
        elapsed = clock() - start
        if len(durations) >= tier.min_runs and elapsed >= tier.min_s:
            break
        if tier.max_s is not None and elapsed >= tier.max_s:
            break
    return Timings(first, warmup_runs, tuple(durations), clock() - start)


# --------------------------------------------------------------------------------------------
# Statistics (a pure function of the durations)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyStats:
    runs: int
    duration_s: float
    first_ms: float
    min_ms: float
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default ``linear`` method)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize(durations_s: Sequence[float], first_s: float, duration_s: float | None = None) -> LatencyStats:
    """Count, first, min, mean, population std (as TFLite), p50/p90/p99 and max, in milliseconds."""
    if not durations_s:
        raise ValueError("no timed runs to summarize")
    ms = sorted(1000.0 * d for d in durations_s)
    return LatencyStats(
        runs=len(ms),
        duration_s=float(sum(durations_s) if duration_s is None else duration_s),
        first_ms=1000.0 * first_s,
        min_ms=ms[0],
        mean_ms=statistics.fmean(ms),
        std_ms=statistics.pstdev(ms),
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        max_ms=ms[-1],
    )


def measure(call: Callable[[], Any], tier: Tier, *, clock: Clock = time.perf_counter, timer: Timer | None = None) -> LatencyStats:
    timings = run_timed(call, tier, clock=clock, timer=timer)
    return summarize(timings.durations_s, timings.first_s, timings.duration_s)


# --------------------------------------------------------------------------------------------
# Accuracy gate: a runtime's outputs against eager fp32 on the task's validation data
# --------------------------------------------------------------------------------------------
# MLPerf-style targets: the fraction of the fp32 metric a runtime must keep.
GATE_TARGETS = {"classification": 0.99, "detection": 0.95, "segmentation": 0.97}
# Where the first output holds class scores: logits N x K (top-1 agreement), N x K x H x W (pixel
# label agreement), N x anchors x (K + 1) (per-anchor top class agreement, SSD's raw outputs).
AGREEMENT_CLASS_DIM = {"classification": 1, "segmentation": 1, "detection": -1}
# Below this reference value (in percent) a ratio says nothing (an untrained model on synthetic data).
MIN_REFERENCE = 1.0


def tensor_leaves(outputs: Any) -> list[torch.Tensor]:
    return [leaf for leaf in pytree.tree_leaves(outputs) if isinstance(leaf, torch.Tensor)]


class OutputComparison:
    """Running comparison of a runtime's raw outputs with eager's on the same batches."""

    def __init__(self, class_dim: int | None) -> None:
        self.class_dim = class_dim
        self.agree = 0
        self.total = 0
        self.max_abs_diff = 0.0

    def update(self, reference: Any, outputs: Any) -> None:
        ref_leaves, out_leaves = tensor_leaves(reference), tensor_leaves(outputs)
        if len(ref_leaves) != len(out_leaves):
            raise RuntimeError(f"runtime returned {len(out_leaves)} outputs, eager {len(ref_leaves)}")
        for ref, out in zip(ref_leaves, out_leaves, strict=True):
            if ref.shape != out.shape:
                raise RuntimeError(f"runtime output shape {tuple(out.shape)} differs from eager {tuple(ref.shape)}")
            if ref.numel():
                diff = (ref.float() - out.float()).abs().max().item()
                self.max_abs_diff = max(self.max_abs_diff, diff if math.isfinite(diff) else math.inf)
        if self.class_dim is not None and ref_leaves and ref_leaves[0].ndim > self.class_dim:
            # Tie-aware: the runtime's top class agrees when eager scores it (within float noise) as
            # high as its own top class; untrained heads emit exact ties that 1e-7 noise breaks.
            ref, out = ref_leaves[0].float(), out_leaves[0].float()
            chosen = ref.gather(self.class_dim, out.argmax(self.class_dim, keepdim=True)).squeeze(self.class_dim)
            tolerance = 1e-5 * (1.0 + ref.abs().max())
            same = chosen >= ref.amax(self.class_dim) - tolerance
            self.agree += int(same.sum())
            self.total += same.numel()

    def agreement(self) -> float | None:
        return 100.0 * self.agree / self.total if self.total else None


def _fingerprint(x: torch.Tensor) -> tuple:
    return (tuple(x.shape), float(x.float().sum()), float(x.float().abs().sum()))


class EagerReference:
    """Eager fp32 outputs per validation batch, computed once and kept within a memory budget.

    The gate calls ``task.evaluate_callable`` once for eager and once per runtime; the batches come
    in the same order, so a runtime's outputs on batch i are compared with eager's on batch i
    (recomputed when they did not fit in the budget or the batch differs).
    """

    def __init__(self, model: nn.Module, budget_bytes: int = 256 * 2**20) -> None:
        self.model = model
        self.budget = budget_bytes
        self.used = 0
        self.cache: dict[int, tuple[tuple, Any]] = {}
        self.metrics: dict[str, Any] | None = None

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> Any:
        return pytree.tree_map(lambda t: t.detach().clone() if isinstance(t, torch.Tensor) else t, self.model(x))

    def recording_forward(self) -> Callable[[torch.Tensor], Any]:
        index = iter(range(1 << 62))

        def forward(x: torch.Tensor) -> Any:
            i = next(index)
            out = self.forward(x)
            size = sum(t.numel() * t.element_size() for t in tensor_leaves(out))
            if self.used + size <= self.budget:
                self.cache[i] = (_fingerprint(x), out)
                self.used += size
            return out

        return forward

    def get(self, i: int, x: torch.Tensor) -> Any:
        cached = self.cache.get(i)
        if cached is not None and cached[0] == _fingerprint(x):
            return cached[1]
        return self.forward(x)


def fixed_batch(forward: Callable[[torch.Tensor], Any], batch_size: int) -> Callable[[torch.Tensor], Any]:
    """Feed a runtime prepared for a static batch: split, pad the last chunk, concatenate back."""

    def run(x: torch.Tensor) -> Any:
        pieces = []
        for chunk in x.split(batch_size):
            n = chunk.shape[0]
            if n < batch_size:
                chunk = torch.cat([chunk, chunk[-1:].expand(batch_size - n, *chunk.shape[1:])])
            out = forward(chunk)
            pieces.append(pytree.tree_map(lambda t, n=n: t[:n] if isinstance(t, torch.Tensor) else t, out))
        if len(pieces) == 1:
            return pieces[0]
        leaves, spec = zip(*(pytree.tree_flatten(p) for p in pieces), strict=True)
        joined = [torch.cat(column) if isinstance(column[0], torch.Tensor) else column[0] for column in zip(*leaves, strict=True)]
        return pytree.tree_unflatten(joined, spec[0])

    return run


@dataclass(frozen=True)
class GateResult:
    metric: str | None
    value: float | None
    reference: float | None
    ratio: float | None
    threshold: float | None
    agreement: float | None
    max_abs_diff: float | None
    images: int | None
    flagged: bool | None
    basis: str | None
    note: str | None = None


def gate_verdict(task_name: str, metric: str, value: float, reference: float, agreement: float | None) -> tuple[float | None, bool | None, str | None]:
    """Ratio to fp32 and the flag: the metric ratio when the reference means something, else label
    agreement with eager (untrained models on synthetic data score ~0, so a ratio is undefined)."""
    threshold = GATE_TARGETS.get(task_name)
    ratio = value / reference if reference >= MIN_REFERENCE else None
    if threshold is None:
        return ratio, None, None
    if ratio is not None:
        return ratio, ratio < threshold, f"{metric} ratio"
    if agreement is not None:
        return None, agreement < 100.0 * threshold, "agreement"
    return None, None, None


def gate_class_mismatch(task_name: str, model_classes: int, data_classes: int | None) -> str | None:
    """Why the gate cannot score this model on this data (class counts differ), or None.

    Class indices are labels for classification, so a wider head still scores; detection and
    segmentation map predicted classes onto the dataset's, which needs the same count.
    """
    if data_classes is None or data_classes == model_classes:
        return None
    if task_name == "classification" and data_classes < model_classes:
        return None
    return f"no gate: the model has {model_classes} classes, the data {data_classes} (pass --num-classes {data_classes})"


def run_gate(
    task: Any,
    cfg: dict[str, Any],
    reference: EagerReference,
    forward: Callable[[torch.Tensor], Any] | None,
    max_images: int,
) -> GateResult:
    """Evaluate ``forward`` (``None``: eager itself) on the validation data and compare with eager."""
    metric = task.monitor
    try:
        if reference.metrics is None:
            reference.metrics = task.evaluate_callable(reference.recording_forward(), cfg, max_images)
        if forward is None:
            value = float(reference.metrics[metric])
            return GateResult(metric, value, value, None, None, None, None, reference.metrics.get("images"), False, "reference")
        comparison = OutputComparison(AGREEMENT_CLASS_DIM.get(task.name))
        index = iter(range(1 << 62))

        def paired(x: torch.Tensor) -> Any:
            i = next(index)
            out = forward(x)
            comparison.update(reference.get(i, x), out)
            return out

        metrics = task.evaluate_callable(paired, cfg, max_images)
    except NotImplementedError:
        return GateResult(None, None, None, None, None, None, None, None, None, None, f"task {task.name!r} has no evaluate_callable")
    value, ref = float(metrics[metric]), float(reference.metrics[metric])
    agreement = comparison.agreement()
    ratio, flagged, basis = gate_verdict(task.name, metric, value, ref, agreement)
    return GateResult(
        metric, value, ref, ratio, GATE_TARGETS.get(task.name), agreement, comparison.max_abs_diff,
        metrics.get("images"), flagged, basis,
    )


# --------------------------------------------------------------------------------------------
# Task data: a real input image and calibration images
# --------------------------------------------------------------------------------------------
def item_image(item: Any) -> torch.Tensor:
    """The image tensor (C x H x W) of one dataset item: ``(image, target)``, a dict, or an image."""
    if isinstance(item, torch.Tensor):
        return item
    if isinstance(item, dict):
        for key in ("image", "images", "pixel_values"):
            if key in item:
                return item_image(item[key])
    if isinstance(item, (list, tuple)) and item:
        return item_image(item[0])
    raise TypeError(f"cannot find an image in a dataset item of type {type(item).__name__}")


def fit_canvas(image: torch.Tensor, size: int) -> torch.Tensor:
    """A square ``size`` input from an image of any size: shrunk to fit when larger (aspect kept), then
    padded with zeros (the mean pixel after normalisation), as DeepLab evaluates whole VOC images."""
    height, width = image.shape[-2:]
    if (height, width) == (size, size):
        return image
    if max(height, width) > size:
        factor = size / max(height, width)
        new = (max(1, round(height * factor)), max(1, round(width * factor)))
        image = torch.nn.functional.interpolate(image[None], size=new, mode="bilinear", align_corners=False)[0]
        height, width = new
    canvas = image.new_zeros(image.shape[0], size, size)
    canvas[:, :height, :width] = image
    return canvas


@dataclass
class TaskImages:
    """Validation images of a task's datamodule, read by index (no workers, no shuffling), each
    fitted to the square input the model is measured at."""

    example: torch.Tensor
    description: str
    dataset: Any = None
    size: int = 0
    num_classes: int | None = None

    def images(self, indices: Iterable[int]) -> torch.Tensor | None:
        if self.dataset is None:
            return None
        items = [item for item in (self.dataset[i] for i in indices) if item is not None]
        return torch.stack([fit_canvas(item_image(item), self.size) for item in items]) if items else None

    def __len__(self) -> int:
        return 0 if self.dataset is None else len(self.dataset)


def load_task_images(task: Any, cfg: dict[str, Any], batch_size: int) -> TaskImages:
    """The first ``batch_size`` validation images of the task's data (synthetic by default).

    Falls back to seeded uniform noise, said so in the record, when the task has no datamodule.
    """
    size = int(cfg["resolution"])
    try:
        datamodule = task.build_datamodule(dict(cfg, num_workers=0, batch_size=batch_size))
        datamodule.prepare_data()
        datamodule.setup("validate")
        dataset = datamodule.val_dataloader().dataset
        images = TaskImages(torch.empty(0), "", dataset, size, getattr(datamodule, "num_classes", None))
        example = images.images(range(min(batch_size, len(dataset))))
        if example is None:
            raise RuntimeError("the validation split yielded no images")
        if example.shape[0] < batch_size:  # a tiny validation split: repeat its images
            example = example.repeat((batch_size + example.shape[0] - 1) // example.shape[0], 1, 1, 1)[:batch_size]
        synthetic = cfg.get("data") in (None, "synthetic")
        images.example = example.contiguous()
        source = "synthetic validation split" if synthetic else f"validation split of {cfg.get('data')}"
        images.description = f"image {0 if batch_size == 1 else f'0..{batch_size - 1}'} of the {source}"
        return images
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - any datamodule failure: measure on noise, and say so
        warnings.warn(f"bench latency: no validation image ({type(error).__name__}: {error}); timing on noise", stacklevel=2)
        generator = torch.Generator().manual_seed(0)
        noise = torch.rand(batch_size, 3, size, size, generator=generator) * 2 - 1
        return TaskImages(noise, f"uniform noise (no validation data: {type(error).__name__})")


def calibration_batches(images: TaskImages, count: int, gate_images: int, batch: int = 8) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """``count`` validation images spread evenly over the split.

    Evenly spaced, not the first or last ones: splits are often sorted by class (ImageFolder), and
    ranges calibrated on a few classes clip the others' activations (the logits above all).
    """
    total = len(images)
    if total == 0 or count <= 0:
        return ([images.example] if count > 0 else []), {"images": images.example.shape[0], "source": images.description}
    count = min(count, total)
    step = total / count
    indices = [int(step * i + step / 2) for i in range(count)]
    batches = [b for b in (images.images(indices[i : i + batch]) for i in range(0, count, batch)) if b is not None]
    info = {
        "images": count,
        "source": f"validation split, every {step:.1f}th image",
        "overlaps_gate": indices[0] < gate_images,
    }
    return batches, info


# --------------------------------------------------------------------------------------------
# The record
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyRecord:
    """One measurement with its context; ``to_json`` gives the file's schema (kind ``latency``)."""

    task: str
    backbone: str
    width: float | None
    resolution: int
    num_classes: int
    runtime: str
    runtime_version: str
    device: str
    threads: int
    batch_size: int
    precision: str
    layout: str
    tier: str
    methodology: dict[str, Any]
    input: str
    init_ms: float
    stats: LatencyStats
    postprocess: dict[str, Any] | None
    accuracy: GateResult | None
    peak_memory_mb: float | None
    memory: dict[str, Any]
    details: dict[str, Any]
    environment: dict[str, Any]
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_json(self) -> dict[str, Any]:
        from benchmark.records import SCHEMA_VERSION

        data = asdict(self)
        stats = data.pop("stats")
        return {"schema_version": SCHEMA_VERSION, "kind": "latency", **data, **stats}


# --------------------------------------------------------------------------------------------
# One benchmark call: prepare each runtime, time it, gate it
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LatencyOptions:
    runtimes: tuple[str, ...]
    threads: int = 1
    batch_size: int = 1
    tier: Tier = TIERS["quick"]
    accuracy_images: int = 256
    calibration_images: int = 32


def benchmark(
    task: Any,
    cfg: dict[str, Any],
    model: nn.Module,
    options: LatencyOptions,
    *,
    clock: Clock = time.perf_counter,
    on_record: Callable[[LatencyRecord], None] | None = None,
) -> list[LatencyRecord]:
    """Measure ``model`` under each runtime of ``options``; records come back in the same order."""
    from benchmark.runtimes import get_runtime

    if options.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {options.batch_size}")
    if options.threads < 1:
        raise UserError(f"--threads must be >= 1, got {options.threads}")
    runtimes = [get_runtime(name) for name in options.runtimes]
    for runtime in runtimes:
        runtime.check_available()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(options.threads)
    try:
        return _benchmark(task, cfg, model.eval(), runtimes, options, clock, on_record)
    finally:
        torch.set_num_threads(threads_before)


def _benchmark(task, cfg, model, runtimes, options, clock, on_record) -> list[LatencyRecord]:
    images = load_task_images(task, cfg, options.batch_size)
    needs_calibration = any(r.needs_calibration for r in runtimes)
    calibration, calibration_info = (
        calibration_batches(images, options.calibration_images, options.accuracy_images) if needs_calibration else ([], None)
    )
    reference = EagerReference(model)
    records = []
    for runtime in runtimes:
        record = measure_runtime(
            runtime, task, cfg, model, images, options, reference,
            calibration=calibration, calibration_info=calibration_info, clock=clock,
        )
        records.append(record)
        if on_record is not None:
            on_record(record)
        gc.collect()
    return records


def measure_runtime(
    runtime: Any,
    task: Any,
    cfg: dict[str, Any],
    model: nn.Module,
    images: TaskImages,
    options: LatencyOptions,
    reference: EagerReference,
    *,
    calibration: Sequence[torch.Tensor] = (),
    calibration_info: dict[str, Any] | None = None,
    clock: Clock = time.perf_counter,
) -> LatencyRecord:
    """Prepare one runtime (timed as init), time it, time post-processing, run the accuracy gate."""
    from benchmark import memory
    from benchmark.records import environment

    example = images.example
    memory.release_free_memory()
    rss_before = memory.current_rss_mb()
    start = clock()
    prepared = runtime.prepare(model, example, threads=options.threads, calibration=calibration)
    init_ms = 1000.0 * (clock() - start)
    rss_after = memory.current_rss_mb()
    init_memory = rss_after - rss_before if rss_before is not None and rss_after is not None else None
    call = prepared.bind(example)
    with memory.PeakMemory(prepared.device) as peak:
        stats = measure(call, options.tier, clock=clock, timer=prepared.timer)
    postprocess = None
    if type(task).postprocess is not _base_postprocess():
        outputs = prepared(example)
        post = measure(lambda: task.postprocess(outputs, cfg), options.tier, clock=clock)
        end_to_end = measure(lambda: task.postprocess(prepared(example), cfg), options.tier, clock=clock)
        postprocess = {"decode_nms": asdict(post), "end_to_end": asdict(end_to_end)}
    accuracy = None
    mismatch = gate_class_mismatch(task.name, int(cfg["num_classes"]), images.num_classes)
    if options.accuracy_images > 0 and images.dataset is not None and mismatch:
        accuracy = GateResult(*[None] * 10, note=mismatch)
    elif options.accuracy_images > 0 and images.dataset is not None:
        gate_cfg = dict(cfg, num_workers=0, batch_size=max(options.batch_size, 8))
        forward = None if runtime.is_reference else prepared
        if forward is not None and prepared.static_batch is not None:
            forward = fixed_batch(prepared, prepared.static_batch)
        accuracy = run_gate(task, gate_cfg, reference, forward, options.accuracy_images)
    details = dict(prepared.details)
    if runtime.needs_calibration:
        details["calibration"] = calibration_info
    return LatencyRecord(
        task=task.name,
        backbone=cfg["backbone"],
        width=cfg.get("width"),
        resolution=int(cfg["resolution"]),
        num_classes=int(cfg["num_classes"]),
        runtime=runtime.name,
        runtime_version=runtime.version(),
        device=prepared.device,
        threads=options.threads,
        batch_size=options.batch_size,
        precision=runtime.precision,
        layout=runtime.layout,
        tier=options.tier.name,
        methodology=asdict(options.tier),
        input=images.description,
        init_ms=init_ms,
        stats=stats,
        postprocess=postprocess,
        accuracy=accuracy,
        peak_memory_mb=peak.growth_mb,
        memory={"inference_peak_mb": peak.growth_mb, "init_mb": init_memory, "method": peak.method},
        details=details,
        environment=environment(prepared.device),
    )


def _base_postprocess() -> Callable:
    from tasks.base import Task

    return Task.postprocess


def custom_tier(base: Tier, **overrides: Any) -> Tier:
    """``base`` with TFLite-style overrides (--warmup-runs, --min-runs, ...); named ``custom``."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return base
    return replace(base, name="custom", **given)


def record_file_name(record: LatencyRecord) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{record.task}-{record.backbone}-{record.runtime}-{stamp}-{random.randbytes(3).hex()}.json"
