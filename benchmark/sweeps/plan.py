"""A sweep's matrix: tiers (quick, full), the cells (task x backbone x width x resolution) and the plan."""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from backbones.errors import UserError
from benchmark.runs.limits import check_resolution, check_width
from tasks.facts import TASK_NAMES

TASKS = TASK_NAMES
# issue 6's runtimes: every CPU one, and eager CUDA when a GPU is present.
CPU_RUNTIMES = ("eager", "eager-cl", "compile", "onnxruntime", "onnxruntime-int8")
GPU_RUNTIMES = ("cuda",)


@dataclass(frozen=True)
class Tier:
    """A named matrix: tasks x backbones x widths x resolutions x runtimes, plus fixed flags."""

    name: str
    tasks: tuple[str, ...]
    backbones: tuple[str, ...]  # empty: every registered backbone
    # Widths for backbones that take ``--width`` (others run once at their only width).
    widths: dict[str, tuple[float, ...]]
    # Resolutions per task; None = the task's recipe default (the embedded data's size).
    resolutions: dict[str, tuple[int | None, ...]]
    runtimes: tuple[str, ...]
    run_args: tuple[str, ...]
    latency_args: tuple[str, ...]
    needs_data: bool
    timeout_s: float | None
    description: str


QUICK = Tier(
    name="quick",
    tasks=TASKS,
    backbones=("mnv1", "mnv2", "mobilenet_v3_large", "mobilenet_v3_small"),
    widths={},
    resolutions={task: (None,) for task in TASKS},
    runtimes=CPU_RUNTIMES,
    # The embedded data's recipes as shipped (each sized to train in minutes on 2 CPU cores and
    # learn far above chance; a 2-epoch cap left detection at ~0 mAP). Faster: --run-args "--max-epochs 2".
    run_args=("--logger", "none", "--num-workers", "2"),
    latency_args=("--tier", "quick", "--threads", "2"),
    needs_data=False,
    timeout_s=3600,
    description="every task x mnv1, mnv2, mobilenet_v3_large/small at width 1.0 on the embedded synthetic "
    "data (the synthetic recipes' schedules), then every CPU runtime (quick latency tier); CI on 2 CPU cores",
)

FULL = Tier(
    name="full",
    tasks=TASKS,
    backbones=(),
    # The papers' grids: TF-slim MobileNetV2 widths, V1 paper Table 6 widths.
    widths={"mnv2": (1.4, 1.3, 1.0, 0.75, 0.5, 0.35), "mnv1": (1.0, 0.75, 0.5, 0.25)},
    # Classification: the slim table's and V1 Table 7's resolutions; SSDLite 320; DeepLab 513 crops.
    resolutions={"classification": (224, 192, 160, 128, 96), "detection": (320,), "segmentation": (513,)},
    runtimes=CPU_RUNTIMES + GPU_RUNTIMES,
    run_args=(),
    latency_args=("--tier", "normal"),
    needs_data=True,
    timeout_s=None,
    description="the papers' matrix on real data (--data TASK=ROOT for each task), full recipes, every "
    "runtime the machine has (cuda on a GPU), normal latency tier (>= 1024 runs and 60 s)",
)
def _ablation_tier() -> Tier:
    from backbones.ablations import ABLATIONS as GRID

    backbones = tuple(dict.fromkeys(a.backbone for a in GRID))
    widths: dict[str, tuple[float, ...]] = {}
    for a in GRID:
        widths[a.backbone] = tuple(dict.fromkeys((*widths.get(a.backbone, ()), a.width)))
    return Tier(
        name="ablations",
        tasks=("classification",),
        backbones=backbones,
        widths=widths,
        resolutions={"classification": (224,)},  # the papers' ablations are at 224x224 on ImageNet
        runtimes=CPU_RUNTIMES,
        run_args=(),
        latency_args=("--tier", "normal"),
        needs_data=True,
        timeout_s=None,
        description="the papers' ablation grid on ImageNet (--data classification=ROOT): V1 Table 4 (full "
        "convolutions), Table 5 (0.75 MobileNet vs shallow), V2 Figure 6 (ReLU6 bottlenecks; shortcuts between "
        "expansions, none); `bench leaderboard` sets the results beside the papers' figures",
    )


ABLATIONS = _ablation_tier()
TIERS = {tier.name: tier for tier in (QUICK, FULL, ABLATIONS)}


@dataclass(frozen=True)
class Cell:
    """One model configuration of the matrix."""

    task: str
    backbone: str
    width: float | None
    resolution: int | None

    @property
    def label(self) -> str:
        width = f" w{self.width}" if self.width is not None else ""
        resolution = f" @{self.resolution}" if self.resolution is not None else ""
        return f"{self.task} {self.backbone}{width}{resolution}"

    @property
    def folder_name(self) -> str:
        """The cell's job folder: named by the cell alone, so a later sweep over the same
        ``--workdir`` finds it again."""
        return self.label.replace(" ", "_").replace("@", "r")

    def model_flags(self) -> list[str]:
        flags = ["--task", self.task, "--backbone", self.backbone]
        if self.width is not None:
            flags += ["--width", str(self.width)]
        if self.resolution is not None:
            flags += ["--resolution", str(self.resolution)]
        return flags


@dataclass(frozen=True)
class Plan:
    cells: tuple[Cell, ...]
    runtimes: tuple[str, ...]
    stages: tuple[str, ...]
    run_args: tuple[str, ...]
    latency_args: tuple[str, ...]
    data: dict[str, str]
    timeout_s: float | None
    skipped: tuple[str, ...] = ()  # why parts of the tier were left out (task not registered, ...)

def _parse_list(text: str | None, convert: Callable[[str], Any], flag: str) -> tuple | None:
    if text is None:
        return None
    try:
        values = tuple(convert(item.strip()) for item in text.split(",") if item.strip())
    except ValueError:
        raise UserError(f"{flag}: cannot read {text!r} (expected a comma-separated list)") from None
    if not values:
        raise UserError(f"{flag}: empty list")
    return values


def parse_data(pairs: Sequence[str]) -> dict[str, str]:
    data = {}
    for pair in pairs:
        task, sep, root = pair.partition("=")
        if not sep or task not in TASKS or not root:
            raise UserError(f"--data {pair!r}: expected TASK=ROOT with TASK one of {', '.join(TASKS)}")
        data[task] = root
    return data


def make_plan(
    tier: Tier,
    *,
    tasks: str | None = None,
    backbones: str | None = None,
    widths: str | None = None,
    resolutions: str | None = None,
    runtimes: str | None = None,
    stages: str = "profile,run,latency",
    data: Sequence[str] = (),
    run_args: str = "",
    latency_args: str = "",
    timeout_s: float | None = None,
    registered_tasks: Iterable[str] | None = None,
    gpu: bool | None = None,
) -> Plan:
    """Expand a tier (and the user's narrowing flags) into the cells and runtimes to run."""
    if registered_tasks is None:
        from tasks import list_tasks

        registered_tasks = list_tasks()
    stage_list = _parse_stages(stages)
    task_list, skipped = _parse_tasks(tasks, tier, set(registered_tasks))
    backbone_list = _parse_backbones(backbones, tier)
    width_override, resolution_override = _parse_sizes(widths, resolutions)
    data_map = parse_data(data)
    if tier.needs_data and "run" in stage_list:
        missing = [t for t in task_list if t not in data_map]
        if missing:
            flags = " ".join(f"--data {t}=ROOT" for t in missing)
            raise UserError(f"--tier {tier.name} trains on real data: give {flags} (or narrow --tasks)")
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    runtime_list = _parse_list(runtimes, str, "--runtimes") or tuple(
        r for r in tier.runtimes if gpu or r not in GPU_RUNTIMES
    )
    from backbones import get_entry

    cells = []
    for task, backbone in itertools.product(task_list, backbone_list):
        takes_width = "width" in get_entry(backbone).options
        width_values = (width_override or tier.widths.get(backbone, (1.0,))) if takes_width else (None,)
        for width, resolution in itertools.product(
            width_values, resolution_override or tier.resolutions[task]
        ):
            cells.append(Cell(task, backbone, width, resolution))
    return Plan(
        cells=tuple(cells),
        runtimes=runtime_list,
        stages=stage_list,
        run_args=tuple(tier.run_args) + tuple(shlex.split(run_args)),
        latency_args=tuple(tier.latency_args) + tuple(shlex.split(latency_args)),
        data=data_map,
        timeout_s=timeout_s if timeout_s is not None else tier.timeout_s,
        skipped=tuple(skipped),
    )


def _parse_stages(stages: str) -> tuple[str, ...]:
    stage_list = _parse_list(stages, str, "--stages")
    unknown = sorted(set(stage_list) - {"profile", "run", "latency"})
    if unknown:
        raise UserError(f"--stages: unknown stage(s) {', '.join(unknown)}; choose from profile, run, latency")
    return stage_list


def _parse_tasks(tasks: str | None, tier: Tier, registered: set[str]) -> tuple[tuple[str, ...], list[str]]:
    """The tasks to run (the tier's unless narrowed) and why any is left out (not in this checkout)."""
    task_list = _parse_list(tasks, str, "--tasks") or tier.tasks
    for task in task_list:
        if task not in TASKS:
            raise UserError(f"--tasks: unknown task {task!r}; choose from {', '.join(TASKS)}")
    skipped = [f"task {t}: not registered in this checkout" for t in task_list if t not in registered]
    return tuple(t for t in task_list if t in registered), skipped


def _parse_backbones(backbones: str | None, tier: Tier) -> tuple[str, ...]:
    """The backbones' registered names: the flag's, else the tier's, else every one but the ablations
    (which have their own tier)."""
    from backbones import UnknownBackboneError, get_entry, list_backbones

    every = tuple(name for name in list_backbones() if not get_entry(name).ablation)
    backbone_list = _parse_list(backbones, str, "--backbones") or tier.backbones or every
    try:
        return tuple(get_entry(name).name for name in backbone_list)
    except UnknownBackboneError as error:
        raise UserError(f"--backbones: {error}") from None


def _parse_sizes(widths: str | None, resolutions: str | None) -> tuple[tuple | None, tuple | None]:
    """``--widths`` and ``--resolutions``, each value checked as ``bench run`` checks it."""
    width_override = _parse_list(widths, float, "--widths")
    resolution_override = _parse_list(resolutions, int, "--resolutions")
    for width in width_override or ():
        check_width(width, "--widths: widths")
    for resolution in resolution_override or ():
        check_resolution(resolution, "--resolutions: resolutions")
    return width_override, resolution_override



DEVICE_DEFAULT_RUNTIMES = "litert"


def device_plans(args: Any) -> list[Plan]:
    """``bench sweep [--devices T1,T2]``: one plan, or one per target, each adding ``--device T`` to
    the latency flags; after the first, only the latency stage (the same checkpoints, kept in the
    shared work folder, are timed on every target)."""
    targets = [t.strip() for t in (getattr(args, "devices", None) or "").split(",") if t.strip()]
    plans = []
    for index, target in enumerate(targets or [None]):
        stages = args.stages
        if index > 0:
            stages = ",".join(s for s in args.stages.split(",") if s.strip() == "latency") or "latency"
        device = f" --device {shlex.quote(target)}" if target else ""
        plans.append(make_plan(
            TIERS[args.tier], tasks=args.tasks, backbones=args.backbones, widths=args.widths,
            resolutions=args.resolutions, runtimes=args.runtimes or (DEVICE_DEFAULT_RUNTIMES if target else None),
            stages=stages, data=args.data, run_args=args.run_args, latency_args=args.latency_args + device,
            timeout_s=args.timeout_s,
        ))  # fmt: skip
    return plans
