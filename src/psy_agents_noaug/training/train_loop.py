"""The training loop, with the spec's step, epoch, system and final metrics.

Read top to bottom: `train()` sets up tracking, runs epochs (`_train_epoch`,
`evaluate`), keeps the best checkpoint, and ends with the `final/*` summary.
Every metric goes through the metric sink, so the loop never waits on the
store and never forces a device sync to log: step values are queued as device
tensors and read back off this thread.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from psy_agents_noaug.training.checkpoints import CHECKPOINT_DIR, CHECKPOINT_NAME, save_checkpoint
from psy_agents_noaug.training.distributed import SINGLE, DistContext, all_reduce_sum
from psy_agents_noaug.training.early_stopping import EarlyStopping
from psy_agents_noaug.training.evaluation import evaluate_loader, forward, split_batch
from psy_agents_noaug.training.tasks import ClassificationTask

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]


class StopReason(enum.StrEnum):
    """Why training ended; decides the run's status and the CLI's exit code, in one place."""

    COMPLETED = "completed"  # every epoch ran
    EARLY_STOPPING = "early_stopping"  # patience ran out before num_epochs
    NON_FINITE_LOSS = "non_finite_loss"  # the loss became NaN/inf: the run failed

    @property
    def run_status(self) -> str:
        return "FAILED" if self is StopReason.NON_FINITE_LOSS else "FINISHED"

    @property
    def exit_code(self) -> int:
        return 1 if self is StopReason.NON_FINITE_LOSS else 0


class TrainingTerminated(KeyboardInterrupt):
    """SIGTERM arrived: treated like Ctrl-C (the run ends KILLED, metrics kept)."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training cannot continue meaningfully."""


class _NullSink:
    """Stand-in when tracking is off: accepts everything, stores nothing."""

    run_id = None

    def log(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_dict(self, *args: Any, **kwargs: Any) -> None:
        pass

    def flush(self, timeout: float | None = None) -> bool:
        return True


class Trainer:
    """Train a classifier and log everything to MLflow at near-zero cost.

    Works inside the caller's active MLflow run, or starts (and ends) its own
    when none is active. Existing calls without the new parameters keep working.

    Args:
        model: Called with the batch's inputs (labels excluded); returns logits or an
            object with ``.logits``.
        train_loader: Batches as dicts with a ``labels`` key, or ``(inputs, labels)`` pairs.
        val_loader: Same format; evaluated after every epoch.
        optimizer: Any torch optimizer.
        criterion: Loss function ``criterion(logits, labels)``.
        device: ``"cpu"``, ``"cuda"``, or a ``torch.device``.
        num_epochs: Maximum number of epochs.
        logging_steps: Log ``train/*`` every N optimizer steps.
        log_system_metrics: Sample ``system/*`` metrics (CPU, memory, GPU).
        system_metrics_interval: Sample system metrics every N optimizer steps.
        scheduler: Optional LR scheduler, stepped once per optimizer step.
        gradient_accumulation_steps: Micro-batches per optimizer step.
        max_grad_norm: Clip the gradient norm to this value (None: no clipping).
        use_amp: Mixed precision (bf16/fp16 autocast); only takes effect on CUDA.
        early_stopping_patience: Epochs without improvement before stopping (0: never).
        early_stopping_metric: Validation metric that defines "best" (e.g. ``val_f1_macro``).
        early_stopping_mode: ``"max"`` or ``"min"``.
        save_dir: Folder for ``best_checkpoint.pt`` (None: a temporary folder).
        epoch_end_callback: ``fn(epoch, val_metrics)`` after each epoch (e.g. HPO pruning);
            exceptions it raises propagate after all metrics are flushed.
        config: Plain dict stored inside the checkpoint (what is needed to rebuild the model).
        track: Log to MLflow (False: train without any tracking).
        progress: Show a progress bar per epoch.
        distributed: torchrun context; only rank 0 tracks and writes checkpoints, and
            validation metrics are computed from every rank's predictions.
        task: How to score and judge batches (default: single-label classification with
            softmax; :class:`~psy_agents_noaug.training.tasks.CriteriaTask` for the nine
            criteria).
        save_optimizer: Keep the optimizer's state in the checkpoint too (to resume
            training; it doubles the file for Adam).

    Example:
        >>> trainer = Trainer(model, train_loader, val_loader, optimizer,  # doctest: +SKIP
        ...                   criterion, "cpu", num_epochs=2, logging_steps=10)
        >>> trainer.train()["best_val_f1_macro"]  # doctest: +SKIP
        0.84
    """

    def __init__(
        self,
        model: nn.Module,
        train_loader: Any,
        val_loader: Any,
        optimizer: torch.optim.Optimizer,
        criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        device: str | torch.device = "cpu",
        num_epochs: int = 10,
        logging_steps: int = 50,
        log_system_metrics: bool = False,
        system_metrics_interval: int = 10,
        *,
        scheduler: Any | None = None,
        gradient_accumulation_steps: int = 1,
        max_grad_norm: float | None = None,
        use_amp: bool = False,
        early_stopping_patience: int = 0,
        early_stopping_metric: str = "val_f1_macro",
        early_stopping_mode: str = "max",
        save_dir: str | Path | None = None,
        epoch_end_callback: EpochCallback | None = None,
        config: Mapping[str, Any] | None = None,
        track: bool = True,
        progress: bool = False,
        distributed: DistContext | None = None,
        task: ClassificationTask | None = None,
        save_optimizer: bool = False,
    ) -> None:
        for name, value, low in (
            ("num_epochs", num_epochs, 1),
            ("logging_steps", logging_steps, 1),
            ("system_metrics_interval", system_metrics_interval, 1),
            ("gradient_accumulation_steps", gradient_accumulation_steps, 1),
            ("early_stopping_patience", early_stopping_patience, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if max_grad_norm is not None and max_grad_norm <= 0:
            raise ValueError(f"max_grad_norm must be > 0 or None, got {max_grad_norm}")
        if not early_stopping_metric.startswith("val_"):
            raise ValueError(
                f"early_stopping_metric must name a validation metric such as 'val_f1_macro', "
                f"got {early_stopping_metric!r}"
            )
        self.model = model
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.optimizer = optimizer
        self.criterion = criterion
        self.device = torch.device(device)
        self.num_epochs = num_epochs
        self.logging_steps = logging_steps
        self.log_system_metrics = log_system_metrics
        self.system_metrics_interval = system_metrics_interval
        self.scheduler = scheduler
        self.accum = gradient_accumulation_steps
        self.max_grad_norm = max_grad_norm
        self.use_amp = use_amp and self.device.type == "cuda"
        self.early_stopping = EarlyStopping(early_stopping_patience, early_stopping_mode)
        self.early_stopping_metric = early_stopping_metric
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.epoch_end_callback = epoch_end_callback
        self.config = dict(config) if config is not None else None
        self.dist = distributed or SINGLE
        self.task = task or ClassificationTask()
        self.save_optimizer = save_optimizer
        self.track = track and self.dist.is_main
        self.progress = progress and self.dist.is_main
        self.global_step = 0
        self.history: list[dict[str, float]] = []
        self.start_epoch = 1
        self._resumed: Mapping[str, Any] | None = None
        self.run_id: str | None = None
        self._sink: Any = _NullSink()
        self._system: Any = None
        self._amp_dtype = (
            torch.bfloat16 if self.use_amp and torch.cuda.is_bf16_supported() else torch.float16
        )
        self._scaler = torch.amp.GradScaler(
            "cuda", enabled=self.use_amp and self._amp_dtype == torch.float16
        )

    # ------------------------------------------------------------------ public API
    def train(self) -> dict[str, Any]:
        """Run training; returns ``best_val_f1_macro``, ``best_epoch``, ``total_steps``, …"""
        with self._tracking() as run, _sigterm_as_interrupt():
            results = self._fit()
            if run is not None:
                stop = results["stop_reason"]
                run.status, run.reason = stop.run_status, results.get("message")
            return results

    def resume(self, checkpoint: Mapping[str, Any]) -> None:
        """Continue from a checkpoint: training goes on at the epoch after it.

        Restores the weights, the step count, the best value early stopping compares with,
        the task's state (thresholds) and, when the checkpoint has them (saved with
        ``save_optimizer=True``), the optimizer's and the scheduler's state; without them
        the optimizer starts afresh (with a warning) and the scheduler is moved on to the
        checkpoint's step.

        Raises:
            ValueError: The checkpoint is at or past ``num_epochs``.
        """
        epoch = int(checkpoint.get("epoch", 0))
        if epoch >= self.num_epochs:
            raise ValueError(
                f"the checkpoint is at epoch {epoch}, and num_epochs is {self.num_epochs}: set "
                f"training.num_epochs above {epoch} to train further"
            )
        getattr(self.model, "module", self.model).load_state_dict(checkpoint["model_state_dict"])
        self.global_step = int(checkpoint.get("global_step", 0))
        if "optimizer_state_dict" in checkpoint:
            self.optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
        else:
            log.warning(
                "the checkpoint has no optimizer state (it was saved without "
                "training.save_optimizer=true): resuming with a fresh optimizer"
            )
        if self.scheduler is not None:
            if "scheduler_state_dict" in checkpoint:
                self.scheduler.load_state_dict(checkpoint["scheduler_state_dict"])
            else:
                with warnings.catch_warnings():  # "step() before optimizer.step()": intended
                    warnings.simplefilter("ignore")
                    for _ in range(self.global_step):
                        self.scheduler.step()
        self.early_stopping.update(float(checkpoint.get("best_metric", math.nan)))
        self.task.load_checkpoint_state(checkpoint)
        self.start_epoch = epoch + 1
        self._resumed = checkpoint

    def evaluate(self, loader: Any = None, prefix: str = "val_") -> dict[str, float]:
        """Loss and the task's metrics on a loader (the validation loader by default)."""
        return evaluate_loader(
            self.model,
            self.val_loader if loader is None else loader,
            self.task,
            self.device,
            prefix=prefix,
            criterion=self.criterion,
            autocast=self._autocast,
        )

    # ------------------------------------------------------------------ the loop
    def _warn_if_no_step_points(self) -> None:
        """Say once, up front, when an interval is longer than the whole run.

        With ``logging_steps`` (or ``system_metrics_interval``) above the run's total
        optimizer steps the run would end without a single step point, silently.
        """
        try:
            batches = len(self.train_loader)
        except TypeError:  # an iterable without a length: the total is unknown
            return
        total = self.num_epochs * math.ceil(batches / self.accum)
        intervals = [("logging_steps", self.logging_steps)]
        if self.log_system_metrics:
            intervals.append(("system_metrics_interval", self.system_metrics_interval))
        for name, value in intervals:
            if value > total:
                log.warning(
                    "%s=%d is larger than this run's %d optimizer steps (%d epochs x %d): "
                    "the run gets no step points for it; lower %s to see them",
                    name, value, total, self.num_epochs, math.ceil(batches / self.accum), name,
                )  # fmt: skip

    def _fit(self) -> dict[str, Any]:
        self.model.to(self.device)
        if self.track:
            self._warn_if_no_step_points()
        save_dir = self.save_dir or Path(tempfile.mkdtemp(prefix="psy-agents-ckpt-"))
        save_dir.mkdir(parents=True, exist_ok=True)
        checkpoint_path = save_dir / CHECKPOINT_NAME
        best_epoch, best_metrics = 0, {}
        best_state: dict[str, Any] = {}
        best_predictions = None
        if self._resumed is not None:  # the checkpoint is the best so far, until beaten
            best_epoch = int(self._resumed.get("epoch", 0))
            best_metrics = dict(self._resumed.get("val_metrics") or {})
            best_state = self.task.checkpoint_state()
            if self.dist.is_main:
                save_checkpoint(checkpoint_path, self._resumed)
        stop_reason = StopReason.COMPLETED
        epoch = self.start_epoch - 1
        for epoch in range(self.start_epoch, self.num_epochs + 1):
            started = time.perf_counter()
            try:
                train_metrics = self._train_epoch(epoch)
            except NonFiniteLossError as exc:
                log.error("%s", exc)
                stop_reason = StopReason.NON_FINITE_LOSS
                self._stop_message = str(exc)
                break
            val_metrics = self.evaluate()
            epoch_metrics = {
                **train_metrics,
                **val_metrics,
                "duration_seconds": time.perf_counter() - started,
            }
            logged_at = int(time.time() * 1000)
            self._sink.log_dict(
                {f"epoch/{k}": v for k, v in epoch_metrics.items()},
                step=epoch,
                timestamp_ms=logged_at,
            )
            self.history.append({"epoch": epoch, "timestamp_ms": logged_at, **epoch_metrics})
            monitored = val_metrics.get(self.early_stopping_metric, math.nan)
            if self.early_stopping.update(monitored):
                best_epoch, best_metrics = epoch, val_metrics
                best_state = self.task.checkpoint_state()
                best_predictions = getattr(self.task, "last_predictions", None)
                self._save_checkpoint(checkpoint_path, epoch, monitored, val_metrics)
            if self.epoch_end_callback is not None:
                self.epoch_end_callback(epoch, dict(val_metrics))
            if self.early_stopping.should_stop and epoch < self.num_epochs:
                stop_reason = StopReason.EARLY_STOPPING
                break
        results: dict[str, Any] = {
            "best_val_f1_macro": best_metrics.get("val_f1_macro", math.nan),
            "best_epoch": best_epoch,
            "total_epochs": epoch if stop_reason != StopReason.NON_FINITE_LOSS else epoch - 1,
            "total_steps": self.global_step,
            "early_stopped": stop_reason != StopReason.COMPLETED,
            "stop_reason": stop_reason,
            "best_metrics": best_metrics,
            "thresholds": best_state.get("thresholds"),
            "val_predictions": best_predictions,
            "checkpoint_path": str(checkpoint_path) if checkpoint_path.exists() else None,
            "history": self.history,
            "run_id": self.run_id,
        }
        final = {f"final/best_{k}": v for k, v in best_metrics.items()}
        final.update(
            {
                "final/best_val_f1_macro": results["best_val_f1_macro"],
                "final/best_epoch": best_epoch,
                "final/total_epochs": results["total_epochs"],
                "final/total_steps": self.global_step,
                "final/early_stopped": float(results["early_stopped"]),
            }
        )
        self._sink.log_dict(final, step=self.global_step)
        if stop_reason == StopReason.NON_FINITE_LOSS:
            results["message"] = self._stop_message
        if self.track and self.run_id and checkpoint_path.exists():
            # Uploaded by the metric writer: training never waits on a slow store for it.
            self._sink.log_artifact(checkpoint_path, CHECKPOINT_DIR, mode="keep")
        return results

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        decisions_total = 0
        step_loss = torch.zeros((), device=self.device)
        step_correct = torch.zeros((), device=self.device, dtype=torch.long)
        step_seen = 0
        step_decisions = 0
        micro = 0
        step_started = time.perf_counter()
        sampler: Any = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)  # a different shuffle per epoch under torchrun
        on_cpu_alone = self.device.type == "cpu" and not self.dist.enabled
        check_every = 1 if on_cpu_alone else self.logging_steps
        self.optimizer.zero_grad(set_to_none=True)
        for batch in self._progress(self.train_loader, epoch):
            inputs, labels = self._split(batch)
            with self._autocast():
                output = self._forward(inputs)
                loss = self.task.loss(self.criterion, output, labels)
            self._scaler.scale(loss / self.accum).backward()
            count = self.task.count(labels)
            hits, decisions = self.task.correct(output, labels)
            step_loss += loss.detach().float() * count
            step_correct += hits
            step_seen += count
            step_decisions += decisions
            micro += 1
            if micro % self.accum:
                continue
            self._optimizer_step()
            self.global_step += 1
            loss_sum += step_loss
            correct += step_correct
            seen += step_seen
            decisions_total += step_decisions
            if self.global_step % check_every == 0 and not self._all_finite(step_loss):
                raise NonFiniteLossError(
                    f"training stopped: the loss became {step_loss.item() / step_seen} at step "
                    f"{self.global_step} (epoch {epoch}); lower the learning rate or set "
                    "a max_grad_norm"
                )
            if self.global_step % self.logging_steps == 0:
                now = time.perf_counter()
                self._sink.log_dict(
                    {
                        "train/loss_step": step_loss / step_seen,
                        "train/accuracy_step": step_correct / step_decisions,
                        "train/learning_rate": self.optimizer.param_groups[0]["lr"],
                        "train/batch_time_seconds": now - step_started,
                    },
                    step=self.global_step,
                )
            if self._system is not None and self.global_step % self.system_metrics_interval == 0:
                self._system.request_sample(self.global_step, run_id=self.run_id)
            step_loss = torch.zeros((), device=self.device)
            step_correct = torch.zeros((), device=self.device, dtype=torch.long)
            step_seen = 0
            step_decisions = 0
            step_started = time.perf_counter()
        if micro % self.accum:  # a last partial accumulation still updates the weights
            self._optimizer_step()
            self.global_step += 1
            loss_sum += step_loss
            correct += step_correct
            seen += step_seen
            decisions_total += step_decisions
        totals = all_reduce_sum(
            torch.stack(
                [
                    loss_sum,
                    correct.to(loss_sum.dtype),
                    torch.tensor(float(seen), device=self.device),
                    torch.tensor(float(decisions_total), device=self.device),
                ]
            )
        )
        loss_total, correct_total, seen_total, decided_total = totals.tolist()  # one sync
        if seen_total == 0:
            raise ValueError("the training loader is empty")
        epoch_loss = loss_total / seen_total
        if not math.isfinite(epoch_loss):
            raise NonFiniteLossError(
                f"training stopped: the loss became {epoch_loss} in epoch {epoch}; lower the "
                "learning rate or set a max_grad_norm"
            )
        return {"train_loss": epoch_loss, "train_accuracy": correct_total / decided_total}

    def _all_finite(self, value: torch.Tensor) -> bool:
        finite = torch.isfinite(value).to(torch.float32).reshape(1)
        if self.dist.enabled:  # every rank stops together, or none does
            all_reduce_sum(finite)
            return bool(finite.item() == self.dist.world_size)
        return bool(finite.item())

    def _optimizer_step(self) -> None:
        if self.max_grad_norm is not None:
            self._scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self._scaler.step(self.optimizer)
        self._scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    # ------------------------------------------------------------------ helpers
    def _split(self, batch: Any) -> tuple[Any, Any]:
        return split_batch(batch, self.device)

    def _forward(self, inputs: Any) -> Any:
        return forward(self.model, inputs)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.use_amp:
            return torch.autocast("cuda", dtype=self._amp_dtype)
        return contextlib.nullcontext()

    def _progress(self, loader: Any, epoch: int) -> Any:
        if not self.progress:
            return loader
        from tqdm.auto import tqdm

        return tqdm(loader, desc=f"epoch {epoch}/{self.num_epochs}", leave=True, unit="batch")

    def _save_checkpoint(
        self, path: Path, epoch: int, metric: float, val_metrics: Mapping[str, float]
    ) -> None:
        """A plain dict with what is needed to resume or rebuild (loadable weights_only)."""
        if not self.dist.is_main:
            return
        model = getattr(self.model, "module", self.model)  # unwrap DistributedDataParallel
        state: dict[str, Any] = {
            "model_state_dict": model.state_dict(),
            "epoch": epoch,
            "global_step": self.global_step,
            "best_metric": float(metric),
            "metric_name": self.early_stopping_metric,
            "val_metrics": {k: float(v) for k, v in val_metrics.items()},
            "config": self.config,
            **self.task.checkpoint_state(),
        }
        if self.save_optimizer:
            state["optimizer_state_dict"] = self.optimizer.state_dict()
            if self.scheduler is not None:
                state["scheduler_state_dict"] = self.scheduler.state_dict()
        save_checkpoint(path, state)

    # ------------------------------------------------------------------ tracking
    @contextlib.contextmanager
    def _tracking(self) -> Iterator[Any]:
        """Log into the caller's active run, or start (and at the end, end) one of our own.

        Yields the run this Trainer owns (a TrackedRun), or None when it logs into the
        caller's run or does not track. Every point is flushed before this returns; an
        owned run's status is written after its points.
        """
        if not self.track:
            yield None
            return
        import mlflow

        from psy_agents_noaug.tracking import TrackedRun, get_sink, status_for

        owned = None
        if mlflow.active_run() is None:
            owned = TrackedRun.start(mlflow.get_tracking_uri(), None, run_name=None)
        active = mlflow.active_run()
        assert active is not None
        self.run_id = active.info.run_id
        self._sink = get_sink(self.run_id)
        if self.log_system_metrics:
            self._system = _make_system_logger(self.device)
        try:
            yield owned
        except BaseException as exc:
            self._close_system_metrics()
            if owned is not None:
                owned.end(*status_for(exc))
            else:
                self._sink.flush()
            raise
        self._close_system_metrics()
        if owned is not None:
            owned.end(owned.status or "FINISHED", owned.reason)
        else:
            self._sink.flush()

    def _close_system_metrics(self) -> None:
        if self._system is not None:
            with contextlib.suppress(Exception):
                self._system.close()
            self._system = None


def _make_system_logger(device: torch.device) -> Any:
    from psy_agents_noaug.monitoring import SystemMetricsLogger

    gpu_index = device.index or 0
    return SystemMetricsLogger(log_cpu=True, log_gpu=device.type == "cuda", gpu_device=gpu_index)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While training on the main thread, SIGTERM ends the run as KILLED, like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise TrainingTerminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
