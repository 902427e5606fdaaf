"""``bench run``: train and evaluate one task/backbone with Lightning and write its result record."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, OnExceptionCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from backbones.errors import UserError
from benchmark.runs.hold import hold_from_env
from benchmark.runs.records import environment, write_json_atomic, write_text_atomic
from benchmark.runs.schema import ResultRecord
from tasks.factory import build_model
from tasks.resumable import ResumeState

LOGGERS = ("wandb", "csv", "tensorboard", "none")


def default_output(cfg: dict[str, Any]) -> Path:
    """A fresh run folder; the random suffix keeps two runs started in the same second apart.

    Lightning's DDP launcher starts the other ranks with this process's environment, so the
    chosen folder is passed on through ``BENCH_RUN_OUTPUT`` and every rank writes to the same one.
    (With torchrun or srun all ranks start independently: pass ``--output`` there.)
    """
    if os.environ.get("BENCH_RUN_OUTPUT"):
        return Path(os.environ["BENCH_RUN_OUTPUT"])
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    output = Path("runs") / f"{cfg['task']}-{cfg['backbone']}-{stamp}-{uuid.uuid4().hex[:6]}"
    os.environ["BENCH_RUN_OUTPUT"] = str(output)
    return output


def wandb_mode() -> str:
    """``online`` when the user is logged in (API key in env or netrc), else ``offline``: never a prompt."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path.home() / ".netrc"
    try:
        if netrc.is_file() and "api.wandb.ai" in netrc.read_text():
            return "online"
    except OSError:
        pass
    return "offline"


def make_logger(cfg: dict[str, Any], output: Path):
    name = cfg["logger"]
    if name not in LOGGERS:
        raise UserError(f"--logger: unknown logger {name!r}; choose from {', '.join(LOGGERS)}")
    if name == "none":
        return False
    if name == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(output, name="logs", version="")
    if name == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(output, name="tensorboard", version="")
    from lightning.pytorch.loggers import WandbLogger

    save_dir = os.environ.get("WANDB_DIR", str(output))
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    tags = [cfg["task"], cfg["backbone"], "synthetic" if cfg.get("data") in (None, "synthetic") else "real-data"]
    return WandbLogger(
        project=cfg.get("wandb_project") or "mobile-vision-bench",
        name=output.name,
        save_dir=save_dir,
        mode=wandb_mode(),
        tags=tags,
        # No console capture: W&B would wrap this process's stdout/stderr (and its threads write through
        # them after the run), which a --json consumer, a test's capture or a later command does not expect.
        settings={"console": "off"},
    )


def public_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config as saved and logged: no secrets, no long lists."""
    return {k: v for k, v in cfg.items() if "key" not in k.lower() and k not in ("class_names", "category_ids")}


INTERRUPTED = "interrupted"


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest of last/step/interrupted checkpoints (by modification time), or None."""
    candidates = [folder / f"{name}.ckpt" for name in ("last", "step", INTERRUPTED)]
    existing = [path for path in candidates if path.is_file()]
    return max(existing, key=lambda path: path.stat().st_mtime_ns) if existing else None


def make_trainer(cfg: dict[str, Any], **options: Any) -> L.Trainer:
    """A Trainer from the run flags; options Lightning rejects become a one-line error."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return L.Trainer(
            max_epochs=cfg["max_epochs"],
            max_steps=cfg["max_steps"],
            accelerator=cfg["accelerator"],
            devices=cfg["devices"],
            strategy=cfg["strategy"],
            num_nodes=cfg["num_nodes"],
            precision=cfg["precision"],
            deterministic=bool(cfg.get("deterministic")),
            **options,
        )
    except (ValueError, TypeError, MisconfigurationException) as error:
        flags = "--accelerator/--devices/--strategy/--num-nodes/--precision/--max-epochs/--max-steps"
        raise UserError(f"{flags}: {str(error).splitlines()[0]}") from None


class Preempted(Exception):
    """SIGTERM arrived: a checkpoint was saved and the run stops; ``--resume`` continues it."""

    def __init__(self, checkpoint: Path) -> None:
        super().__init__(f"received SIGTERM; saved {checkpoint}; continue with the same command plus --resume")
        self.checkpoint = checkpoint


@contextlib.contextmanager
def translate_runtime_errors(cfg: dict[str, Any]):
    """Resource failures users can act on become one-line errors that say what to change."""
    try:
        yield
    except SIGTERMException:
        raise Preempted(Path(cfg["output"]) / "checkpoints" / f"{INTERRUPTED}.ckpt") from None
    except torch.cuda.OutOfMemoryError:
        smaller = max(1, cfg["batch_size"] // 2)
        raise UserError(
            f"--batch-size {cfg['batch_size']}: out of GPU memory; try a smaller batch, e.g. --batch-size {smaller}"
        ) from None
    except RuntimeError as error:
        if "DataLoader worker" in str(error) and ("killed" in str(error) or "exited unexpectedly" in str(error)):
            raise UserError(
                f"a DataLoader worker died ({str(error).splitlines()[0]}); if it ran out of memory, "
                f"lower --num-workers (now {cfg['num_workers']}) or --batch-size"
            ) from None
        raise
    except ValueError as error:
        if "Expected more than 1 value per channel when training" in str(error):
            raise UserError(
                f"--batch-size {cfg['batch_size']}: batch norm needs at least 2 images per device in training "
                "(the smallest feature maps are 1x1); use --batch-size 2 or more"
            ) from None
        raise


class ResumePoint(Callback):
    """The optimizer step training started from (0, or the restored checkpoint's), for the record."""

    def __init__(self) -> None:
        self.step = 0

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # Read here, not at on_train_start: a run killed after its last step resumes with nothing left
        # to train, and Lightning then never starts training.
        self.step = int(checkpoint["global_step"])


# Lightning notices that do not apply here: the final validation deliberately uses the model in
# memory (the EMA weights when on), and a pytree deprecation inside Lightning itself.
QUIET_WARNINGS = (
    r"`\.fit\(ckpt_path=None\)` was called without a model",
    r'\.fit\(ckpt_path="last"\) is set, but there is no last checkpoint',
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # BenchModule's batch hook (--channels-last) is meant to apply; the data modules define none.
    r"You have overridden `on_after_batch_transfer` in `LightningModule`",
    # --resume continues in the run's own checkpoint folder, which therefore holds checkpoints.
    r"Checkpoint directory .* exists and is not empty",
)


# What a run changes in its process: Lightning's seed variables, the DDP ranks' shared output folder.
RUN_VARIABLES = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "BENCH_RUN_OUTPUT")


@contextlib.contextmanager
def process_state_kept():
    """Restore what a run changes in its process: the environment variables it sets, the warning
    filters, torch's thread count, and the SIGINT/SIGTERM handlers (Lightning sets SIGINT to ignored after Ctrl-C and
    never puts it back), so whatever runs next in the same process starts as it would have."""
    variables = {name: os.environ.get(name) for name in RUN_VARIABLES}
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()  # Trainer(deterministic=True) sets it for good
    try:
        with warnings.catch_warnings():
            yield
    finally:
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for sig, handler in handlers.items():
            if handler is not None and threading.current_thread() is threading.main_thread():
                signal.signal(sig, handler)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


@contextlib.contextmanager
def interrupt_as_keyboard_interrupt(trainer: L.Trainer, checkpoint: Path):
    """Ctrl-C: Lightning saves ``interrupted.ckpt`` (OnExceptionCheckpoint) and then calls
    ``sys.exit(1)``; turned back into KeyboardInterrupt here so the CLI prints one line and exits 130."""
    try:
        yield
    except SystemExit:
        if trainer.interrupted and not trainer.received_sigterm:
            raise KeyboardInterrupt(f"saved {checkpoint}; continue with the same command plus --resume") from None
        raise


@dataclass(frozen=True)
class Trained:
    """A finished run: its record (also in ``<output>/result.json``) and, for an offline W&B run, the
    folder ``wandb sync`` uploads later."""

    record: ResultRecord
    wandb_offline_dir: str | None = None


def run(cfg: dict[str, Any], *, num_classes_given: bool = False) -> Trained:
    """Train, validate, write ``<output>/result.json``. ``num_classes_given``: ``--num-classes`` was on
    the command line, so the dataset must have that many classes (else the dataset's count is taken)."""
    with process_state_kept():
        return _run(cfg, num_classes_given)


def _run(cfg: dict[str, Any], num_classes_given: bool) -> Trained:
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    from tasks import get_task

    task = get_task(cfg["task"])
    started = time.perf_counter()
    output = Path(cfg.get("output") or default_output(cfg))
    cfg["output"] = str(output)
    checkpoints = output / "checkpoints"
    resume_from = latest_checkpoint(checkpoints) if cfg.get("resume") else None
    if cfg.get("resume") and resume_from is None:
        raise UserError(f"--resume: no checkpoint to resume from in {checkpoints}")
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    # The data first: a wrong --data is one line before Lightning prints anything or a folder is made.
    datamodule = prepare_data(task, cfg, num_classes_given)
    output.mkdir(parents=True, exist_ok=True)
    logger = make_logger(cfg, output)
    resume_point = ResumePoint()
    trainer = make_trainer(
        cfg,
        logger=logger,
        callbacks=[*run_callbacks(cfg, f"val/{task.monitor}", checkpoints, resume_point),
                   *hold_from_env(output, resume_from)],  # off unless BENCH_HOLD_AT_STEP names this run (tests)
        default_root_dir=output,
        log_every_n_steps=cfg.get("log_every_n_steps") or 10,
        val_check_interval=cfg.get("val_check_interval"),
        check_val_every_n_epoch=cfg.get("val_every_n_epochs") or 1,
        limit_val_batches=cfg.get("limit_val_batches"),
        enable_model_summary=False,
    )
    model = build_model(task, cfg)
    module = task.build_module(cfg, model)
    module.bench_config = dict(cfg)
    profile = task.profile(model, cfg)

    write_text_atomic(output / "config.yaml", yaml.safe_dump(public_config(cfg), sort_keys=True))
    if logger:
        logger.log_hyperparams({**public_config(cfg), "params": profile["params"], "madds": profile["madds"]})
    interrupted = checkpoints / f"{INTERRUPTED}.ckpt"
    with translate_runtime_errors(cfg), interrupt_as_keyboard_interrupt(trainer, interrupted):
        # weights_only: a checkpoint holds tensors and plain containers, never pickled code.
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        if trainer.received_sigterm:
            raise Preempted(interrupted)
        trainer.validate(module, datamodule=datamodule, verbose=False)
    record = result_record(task, cfg, module, datamodule, profile, trainer,
                           resumed_from_step=resume_point.step if resume_from else None,
                           wall_time_s=round(time.perf_counter() - started, 2))
    offline_dir = None
    if trainer.is_global_zero:
        write_json_atomic(output / "result.json", record.to_json())
        if logger and cfg["logger"] == "wandb":
            offline_dir = _finish_wandb(logger, record)
    return Trained(record, offline_dir)


def prepare_data(task, cfg: dict[str, Any], num_classes_given: bool):
    """The task's datamodule, set up for fitting; fills the class count and names into ``cfg``."""
    datamodule = task.build_datamodule(cfg)
    datamodule.seed = cfg["seed"]
    datamodule.prepare_data()
    datamodule.setup("fit")
    if not num_classes_given:
        cfg["num_classes"] = datamodule.num_classes
    elif cfg["num_classes"] != datamodule.num_classes:
        raise UserError(f"--num-classes {cfg['num_classes']} but the dataset has {datamodule.num_classes} classes")
    cfg["class_names"] = datamodule.class_names()
    if hasattr(datamodule, "category_ids"):
        cfg["category_ids"] = datamodule.category_ids()
    return datamodule


def run_callbacks(cfg: dict[str, Any], monitor: str, checkpoints: Path, resume_point: ResumePoint) -> list[Callback]:
    """Best by the task's metric and ``last.ckpt`` at each validation; ``step.ckpt`` every N steps so
    a killed run loses little; ``interrupted.ckpt`` when SIGTERM (SLURM pre-emption), Ctrl-C or an
    error stops training at a batch boundary. --resume takes the newest of them."""
    return [
        resume_point,
        ModelCheckpoint(dirpath=checkpoints, filename="best", monitor=monitor, mode="max", save_last=True),
        ModelCheckpoint(dirpath=checkpoints, filename="step", every_n_train_steps=cfg.get("checkpoint_every") or 50),
        OnExceptionCheckpoint(dirpath=checkpoints, filename=INTERRUPTED),
        # The data loader's position and the RNG states, so --resume repeats the uninterrupted run.
        ResumeState(),
    ]


def result_record(task, cfg: dict[str, Any], module, datamodule, profile: dict[str, Any], trainer: L.Trainer,
                  *, resumed_from_step: int | None, wall_time_s: float) -> ResultRecord:
    """The run's ``result.json``: what was trained on what, its metrics, counts and environment."""
    return ResultRecord.of_model(
        task.name,
        cfg,
        dataset=datamodule.dataset_info(),
        metrics=module.final_metrics(),
        params=profile["params"],
        madds=profile["madds"],
        profile=profile,
        config=public_config(cfg),
        steps=trainer.global_step,
        resumed_from_step=resumed_from_step,
        epochs=trainer.current_epoch,
        wall_time_s=wall_time_s,
        environment=environment(str(trainer.strategy.root_device)),
    )


def _finish_wandb(logger, record: ResultRecord) -> str | None:
    """The record into the run's summary; the run's folder when W&B ran offline."""
    experiment = logger.experiment
    experiment.summary.update(_flatten({"result": record.to_json()}))
    offline_dir = str(Path(experiment.dir).parent) if experiment.settings.mode == "offline" else None
    experiment.finish()  # flush the run to disk now, not at interpreter exit
    return offline_dir


def _flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat
