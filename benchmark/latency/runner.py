"""One ``bench latency`` measurement: prepare each runtime (init), time it, time post-processing, gate it."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from backbones.errors import UserError
from benchmark.latency.gate import EagerReference, accuracy_gate, fixed_batch
from benchmark.latency.inputs import TaskImages, calibration_batches, load_task_images
from benchmark.latency.runtimes import Runtime, get_runtime
from benchmark.latency.timing import TIERS, Clock, Tier, measure
from benchmark.memory import peak as memory
from benchmark.runs.records import environment
from benchmark.runs.schema import LatencyRecord
from tasks.progress import stage


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

    def __post_init__(self) -> None:
        """Checked once, when the options are made: before anything is built or measured."""
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.threads < 1:
            raise UserError(f"--threads must be >= 1, got {self.threads}")
        for name in ("accuracy_images", "calibration_images"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in self.runtimes:  # a missing package is a one-line error at once
            get_runtime(name).check_available()


def benchmark(
    task: Any,
    cfg: dict[str, Any],
    model: nn.Module,
    options: LatencyOptions,
    *,
    clock: Clock = time.perf_counter,
    on_record: Callable[[LatencyRecord], None] | None = None,
    extra_runtimes: Sequence[Runtime] = (),
    weights: dict[str, Any] | None = None,
) -> list[LatencyRecord]:
    """Measure ``model`` under each runtime of ``options`` and then each of ``extra_runtimes`` (a given
    ``.tflite`` file); records come back in the same order, each naming the ``weights`` timed."""
    runtimes = [get_runtime(name) for name in options.runtimes] + list(extra_runtimes)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(options.threads)
    try:
        return _benchmark(task, cfg, model.eval(), runtimes, options, clock, on_record, weights)
    finally:
        torch.set_num_threads(threads_before)


def _benchmark(task, cfg, model, runtimes, options, clock, on_record, weights) -> list[LatencyRecord]:
    images = load_task_images(task, cfg, options.batch_size)
    needs_calibration = any(r.needs_calibration for r in runtimes)
    calibration, calibration_info = (
        calibration_batches(images, options.calibration_images, options.accuracy_images) if needs_calibration else ([], None)
    )
    reference = EagerReference(model)
    records, failed = [], []
    for runtime in runtimes:
        try:
            with stage(f"latency {runtime.name}"):  # in logs: one line per runtime
                record = measure_runtime(
                    runtime, task, cfg, model, images, options, reference,
                    calibration=calibration, calibration_info=calibration_info, clock=clock, weights=weights,
                )
        except RuntimeCannotTakeModel as error:
            failed.append(str(error))  # the other runtimes are still timed; each failure is named at the end
            continue
        except UserError:
            raise
        except Exception as error:  # noqa: BLE001 - a runtime that took the file but fails running it (int8 DIV ...)
            from benchmark.latency.runtimes.export import conversion_failure

            failed.append(f"--runtime {runtime.name}: cannot run {task.name} {cfg['backbone']} ({conversion_failure(error)})")
            continue
        finally:
            gc.collect()
        records.append(record)
        if on_record is not None:
            on_record(record)
    if failed:
        raise RuntimeCannotTakeModel("; ".join(failed))
    return records


def time_postprocess(task: Any, cfg: dict[str, Any], model: nn.Module, prepared: Any, example: torch.Tensor, tier: Tier,
                     clock: Clock) -> dict[str, Any]:  # fmt: skip
    """A detector's decoding + NMS alone, and the runtime's forward pass with it (end to end)."""
    decode, size = task.decoder(model, cfg), tuple(example.shape[-2:])
    outputs = prepared(example)
    post = measure(lambda: decode(outputs, size), tier, clock=clock)
    end_to_end = measure(lambda: decode(prepared(example), size), tier, clock=clock)
    return {"decode_nms": asdict(post), "end_to_end": asdict(end_to_end)}


class RuntimeCannotTakeModel(UserError):
    """A runtime's converter or compiler refused the model (an unsupported operator, a mutated constant):
    named in one line with the runtime, after the other runtimes have been timed and recorded."""


def prepare_runtime(runtime: Any, task: Any, cfg: dict[str, Any], model: nn.Module, example: torch.Tensor,
                    options: LatencyOptions, calibration: Sequence[torch.Tensor]) -> Any:  # fmt: skip
    """``runtime.prepare``, with a converter's own exception turned into one line naming the runtime and the op."""
    from benchmark.latency.runtimes.export import conversion_failure

    try:
        return runtime.prepare(model, example, threads=options.threads, calibration=calibration)
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 - any converter's failure on this model: one line, the run goes on
        raise RuntimeCannotTakeModel(
            f"--runtime {runtime.name}: cannot take {task.name} {cfg['backbone']} ({conversion_failure(error)})"
        ) from None


def judge(gate: Any, runtime: Any, prepared: Any) -> Any:
    """The accuracy gate's verdict on ``prepared`` (the eager reference judges itself: no second run);
    a runtime with a static batch is fed one image at a time at that batch."""
    forward = None if runtime.is_reference else prepared
    if forward is not None and prepared.static_batch is not None:
        forward = fixed_batch(prepared, prepared.static_batch)
    return gate.judge(forward)


def record_details(runtime: Any, prepared: Any, model: nn.Module, calibration_info: dict[str, Any] | None) -> dict[str, Any]:
    """What the runtime reports of itself, plus what the record must say of the model and calibration."""
    details = dict(prepared.details)
    if any(getattr(m, "reparameterized", False) for m in model.modules()):
        details["reparameterized"] = True  # timed (and exported) as the fused inference form
    if runtime.needs_calibration:
        details["calibration"] = calibration_info
    return details


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
    weights: dict[str, Any] | None = None,
) -> LatencyRecord:
    """Prepare one runtime (timed as init), time it, time post-processing, run the accuracy gate."""
    example = images.example
    memory.release_free_memory()
    rss_before = memory.current_rss_mb()
    start = clock()
    prepared = prepare_runtime(runtime, task, cfg, model, example, options, calibration)
    init_ms = 1000.0 * (clock() - start)
    rss_after = memory.current_rss_mb()
    init_memory = rss_after - rss_before if rss_before is not None and rss_after is not None else None
    call = prepared.bind(example)
    with memory.PeakMemory(prepared.device) as peak:
        stats = measure(call, options.tier, clock=clock, timer=prepared.timer)
    postprocess = time_postprocess(task, cfg, model, prepared, example, options.tier, clock) if task.has_decoder else None
    gate = accuracy_gate(task, cfg, images, reference, options.accuracy_images, options.batch_size)
    accuracy = judge(gate, runtime, prepared) if gate is not None else None
    return LatencyRecord.of_model(
        task.name,
        cfg,
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
        details=record_details(runtime, prepared, model, calibration_info),
        environment=environment(prepared.device),
        weights=weights,
    )
