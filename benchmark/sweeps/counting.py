"""Counting the suite's models: params and MAdds of every network the reported baselines name,
cached as ``profile`` records (``bench leaderboard --recount`` and a sweep's profile stage)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from backbones.errors import UserError
from benchmark.leaderboards.baselines import BASELINES, Baselines, SuiteModel
from benchmark.leaderboards.store import add_record
from benchmark.runs.schema import ProfileRecord


def count_profile(model: SuiteModel) -> ProfileRecord:
    """Count one suite model (``profile_model``, in-process); a ``profile`` record."""
    import torch
    import torchvision

    from benchmark.runs.config import resolve_config
    from benchmark.runs.profile import profile_model
    from tasks import get_task

    task = get_task(model.task)
    try:
        cfg = resolve_config(task, model.config(task.default_num_classes), shipped_recipes=False)
        counts = profile_model(task, cfg)
    except UserError as error:
        raise UserError(f"bench profile {' '.join(model.profile_flags(task.default_num_classes))}: {error}") from None
    return ProfileRecord(
        key=model.key,
        task=model.task,
        backbone=model.backbone,
        width=model.width,
        resolution=model.resolution,
        num_classes=counts.get("num_classes", task.default_num_classes),
        options=list(model.flags),
        params=counts["params"],
        madds=counts["madds"],
        profile=counts,
        counted_with={"torch": torch.__version__.split("+")[0], "torchvision": torchvision.__version__.split("+")[0]},
    )


def recount(
    records_dir: Path, baselines: Baselines = BASELINES, tasks: Iterable[str] | None = None
) -> list[str]:
    """Count every suite model the baselines name (of registered tasks) into ``profile`` records.

    Returns one log line per model. A model whose task or option is not available yet is skipped
    with its reason; its reported row keeps an empty *counted* cell.
    """
    from tasks import list_tasks

    registered = set(list_tasks())
    wanted = set(tasks) if tasks is not None else None
    lines = []
    for model in baselines.suite_models():
        if wanted is not None and model.task not in wanted:
            continue
        if model.task not in registered:
            lines.append(f"count {model.key}: skipped (task {model.task} not registered)")
            continue
        try:
            record = count_profile(model)
        except UserError as error:
            lines.append(f"count {model.key}: skipped ({error})")
            continue
        path, changed = add_record(record.to_json(), records_dir)
        state = "updated" if changed else "unchanged"
        lines.append(
            f"count {model.key}: {record.params:,} params, {record.madds / 1e6:,.1f}M MAdds ({state})"
        )
    return lines
