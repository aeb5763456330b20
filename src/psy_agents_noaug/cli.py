"""`psy-agents` / `python -m psy_agents_noaug.cli`: a thin layer over the jobs.

    psy-agents train    [overrides…]            train on the config (default: bundled sample)
    psy-agents hpo      [overrides…]            Optuna search, nested MLflow runs (stage=stage0…)
    psy-agents evaluate run_id=ID | checkpoint=PATH [overrides…]
    psy-agents register run_id=ID [name=NAME] [stage=Staging|Production|Archived]
    psy-agents predict  model_uri=URI input=posts.csv [output=predictions.csv] [threshold=T]
    psy-agents sync     JOURNAL [tracking_uri=URI]    upload what waited in a journal
    psy-agents doctor   [tracking_uri=URI] [experiment=NAME] [stale_after_s=S] [dry_run=true]
                                                end RUNNING runs whose process died (FAILED)

Overrides are Hydra's `key=value` (e.g. `model=tiny training.num_epochs=2`).

Exit codes: 0 done; 1 training failed (the loss became NaN/inf) or, for sync, part of a
journal could not be read; 2 a user mistake (one line starting with "error:"); 3 training
(or a study) finished but the tracking store was unreachable at the end, so some points
wait in a journal (the last lines name it and the sync command); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

USAGE = __doc__ or ""
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_SYNCED = 3
EXIT_INTERRUPTED = 130

# Command-specific arguments that are not config keys, per command.
COMMAND_ARGS: dict[str, tuple[str, ...]] = {
    "train": (),
    "hpo": (),
    "evaluate": ("run_id", "checkpoint"),
    "register": ("run_id", "name", "stage"),
    "predict": ("model_uri", "input", "output", "threshold"),
    "sync": ("tracking_uri",),
    "doctor": ("tracking_uri", "experiment", "stale_after_s", "dry_run"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE.strip())
        return 0 if args else EXIT_USAGE
    command, rest = args[0], args[1:]
    if command not in COMMAND_ARGS:
        return _fail(f"unknown command {command!r}; valid commands: {', '.join(COMMAND_ARGS)}")
    if any(a in ("-h", "--help") for a in rest):
        print(_command_help(command))
        return 0
    _quiet_libraries()
    _keep_interrupts_from_finalizers()
    code = _run_command(command, rest)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A torchrun worker leaves without interpreter finalization (gloo threads abort it).
        from psy_agents_noaug.training.distributed import exit_without_finalizing

        exit_without_finalizing(code)
    return code


def _keep_interrupts_from_finalizers() -> None:
    """A Ctrl-C that lands inside a finalizer (a ``__del__``, a weakref callback such as
    matplotlib's) is "ignored" by Python: printed with a traceback, and lost. Deliver it
    again a moment later instead, so it interrupts like any other."""
    import signal
    import threading

    default = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGINT)).start()
            return
        default(unraisable)

    sys.unraisablehook = hook


def _run_command(command: str, rest: list[str]) -> int:
    try:
        return COMMANDS[command](rest)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the run was ended as KILLED; metrics logged so far are kept",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Exception as exc:
        if _is_user_error(exc):
            return _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _is_user_error(exc: BaseException) -> bool:
    from psy_agents_noaug.config import ConfigError

    user_errors: tuple[type[BaseException], ...] = (ConfigError, FileNotFoundError)
    try:
        from psy_agents_noaug.data.redsm5 import DataError

        user_errors += (DataError,)
    except ImportError:
        pass
    from psy_agents_noaug.models.encoders import EncoderNotFoundError
    from psy_agents_noaug.tracking.store import TrackingStoreError
    from psy_agents_noaug.training.checkpoints import CheckpointError

    user_errors += (CheckpointError, EncoderNotFoundError, TrackingStoreError, UsageError)
    return isinstance(exc, user_errors)


class UsageError(ValueError):
    """Bad command-line arguments."""


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("mlflow", "alembic", "transformers", "optuna", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass


def split_args(command: str, args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Separate `name=value` command arguments from Hydra config overrides."""
    own: dict[str, str] = {}
    overrides = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key in COMMAND_ARGS[command]:
            own[key] = value
        elif not sep and command == "sync" and "journal" not in own:
            own["journal"] = arg
        elif not sep:
            raise UsageError(
                f"argument {arg!r} is not key=value; see `psy-agents {command} --help`"
            )
        else:
            overrides.append(arg)
    return own, overrides


def _command_help(command: str) -> str:
    extra = COMMAND_ARGS[command]
    lines = [f"psy-agents {command} " + " ".join(f"{a}=…" for a in extra) + " [overrides…]"]
    if command in ("train", "hpo", "evaluate"):
        from omegaconf import OmegaConf

        from psy_agents_noaug.config import load_config

        lines += ["", "Config (override any key with key=value):", OmegaConf.to_yaml(load_config())]
    return "\n".join(lines)


# --------------------------------------------------------------------------- commands
def cmd_train(args: list[str]) -> int:
    from psy_agents_noaug.config import load_config
    from psy_agents_noaug.jobs.train import run_train
    from psy_agents_noaug.tracking.lifecycle import deferred_interrupts

    _, overrides = split_args("train", args)
    cfg = load_config(overrides)
    results = run_train(cfg)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 reports for the job
    with deferred_interrupts("the summary"):  # the run has ended: say how, whole
        return _report_training(cfg, results)


def _report_training(cfg: Any, results: dict[str, Any]) -> int:
    from psy_agents_noaug.tracking.links import run_link
    from psy_agents_noaug.tracking.sink import default_journal_dir
    from psy_agents_noaug.tracking.store import mask_uri

    stop = results["stop_reason"]
    print()
    if results.get("message"):
        print(f"error: {results['message']}", file=sys.stderr)
    print(f"best val macro F1 : {results['best_val_f1_macro']:.4f} (epoch {results['best_epoch']})")
    print(
        f"steps / epochs    : {results['total_steps']} / {results['total_epochs']}"
        + ("  (stopped early)" if results["early_stopped"] else "")
    )
    if not cfg.mlflow.enabled:
        return stop.exit_code
    print(f"run id            : {results['run_id']}  (experiment {results['experiment_name']})")
    if results.get("model_version") is not None:
        v = results["model_version"]
        print(f"registered model  : {v.name} version {v.version}")
    uri = cfg.mlflow.tracking_uri
    if not uri.startswith("http"):
        print(f"see it with       : mlflow ui --backend-store-uri {mask_uri(uri)}")
    print(f"open              : {run_link(uri, results['experiment_id'], results['run_id'])}")
    if not results.get("synced", True):
        journals = results.get("journals") or [cfg.mlflow.journal_dir or default_journal_dir()]
        print(
            f"not synced        : the tracking store at {mask_uri(uri)} was unreachable at the "
            f"end; the run's remaining points and its end status wait in {journals[0]}",
            file=sys.stderr,
        )
        print(f"upload them with  : psy-agents sync {journals[0]}", file=sys.stderr)
        return EXIT_NOT_SYNCED if stop.exit_code == 0 else stop.exit_code
    return stop.exit_code


def cmd_hpo(args: list[str]) -> int:
    from psy_agents_noaug.config import load_config
    from psy_agents_noaug.jobs.hpo import run_hpo

    _, overrides = split_args("hpo", args)
    cfg = load_config(overrides)
    summary = run_hpo(cfg)
    if not cfg.mlflow.enabled:
        return 0
    from psy_agents_noaug.tracking.links import experiment_link
    from psy_agents_noaug.tracking.sink import unsynced_journals
    from psy_agents_noaug.tracking.store import mask_uri

    uri = cfg.mlflow.tracking_uri
    if not uri.startswith("http"):
        print(f"see the parent run and its trials with: mlflow ui --backend-store-uri "
              f"{mask_uri(uri)}")  # fmt: skip
    if summary.get("experiment_id") is not None:
        print(f"open: {experiment_link(uri, summary['experiment_id'])}")
    journals = unsynced_journals()
    if not journals:
        return 0
    print(f"not synced: the tracking store at {mask_uri(uri)} was unreachable at the end; "
          f"part of the study's runs waits in {len(journals)} journal(s). Upload with:",
          file=sys.stderr)  # fmt: skip
    for journal in journals:
        print(f"  psy-agents sync {journal}", file=sys.stderr)
    return EXIT_NOT_SYNCED


def cmd_evaluate(args: list[str]) -> int:
    from psy_agents_noaug.config import load_config
    from psy_agents_noaug.jobs.evaluate import run_evaluate

    own, overrides = split_args("evaluate", args)
    if ("run_id" in own) == ("checkpoint" in own):
        raise UsageError("evaluate needs exactly one of run_id=ID or checkpoint=PATH")
    cfg = load_config(overrides)
    report = run_evaluate(cfg, run_id=own.get("run_id"), checkpoint=own.get("checkpoint"))
    print(f"test macro F1: {report['test/f1_macro']:.4f}")
    for key, value in report.items():
        if key.startswith("test/f1_A"):
            print(f"  {key.removeprefix('test/f1_'):>5}: {value:.4f}")
    return 0


def cmd_register(args: list[str]) -> int:
    from psy_agents_noaug.config import load_config
    from psy_agents_noaug.jobs.register import register_from_run

    own, overrides = split_args("register", args)
    if "run_id" not in own:
        raise UsageError("register needs run_id=ID (a training run with a best checkpoint)")
    cfg = load_config(overrides)
    version = register_from_run(
        own["run_id"],
        name=own.get("name", f"{cfg.task.name}_classifier"),
        stage=own.get("stage"),
        tracking_uri=cfg.mlflow.tracking_uri,
    )
    print(f"registered {version.name} version {version.version}")
    return 0


def cmd_predict(args: list[str]) -> int:
    from psy_agents_noaug.config import load_config
    from psy_agents_noaug.jobs.predict import predict_file

    own, overrides = split_args("predict", args)
    if "model_uri" not in own or "input" not in own:
        raise UsageError("predict needs model_uri=URI and input=posts.csv (columns post_id,text)")
    threshold = None
    if "threshold" in own:
        try:
            threshold = float(own["threshold"])
        except ValueError:
            threshold = -1.0
        if not 0.0 < threshold < 1.0:
            raise UsageError(
                f"threshold={own['threshold']} must be a number between 0 and 1 (exclusive); "
                "leave it out to use each criterion's tuned threshold"
            )
    cfg = load_config(overrides)
    out = predict_file(
        own["model_uri"],
        own["input"],
        own.get("output", "predictions.csv"),
        tracking_uri=cfg.mlflow.tracking_uri,
        threshold=threshold,
    )
    print(f"predictions written to {out}")
    return 0


def cmd_sync(args: list[str]) -> int:
    from psy_agents_noaug.jobs.sync import run_sync

    own, overrides = split_args("sync", args)
    if "journal" not in own:
        raise UsageError("sync needs the journal path: psy-agents sync PATH [tracking_uri=URI]")
    if overrides:
        raise UsageError(f"sync takes no config overrides, got {overrides}")
    return run_sync(own["journal"], tracking_uri=own.get("tracking_uri"))


def cmd_doctor(args: list[str]) -> int:
    from psy_agents_noaug.config import load_config
    from psy_agents_noaug.jobs.doctor import run_doctor

    own, overrides = split_args("doctor", args)
    cfg = load_config(overrides)
    raw = own.get("stale_after_s", str(cfg.mlflow.orphan_after_s))
    try:
        stale_after_s = float(raw)
    except ValueError:
        stale_after_s = -1.0
    if not stale_after_s > 0:
        raise UsageError(f"stale_after_s={raw!r} must be a number of seconds > 0")
    dry_run = own.get("dry_run", "false").lower()
    if dry_run not in ("true", "false"):
        raise UsageError(f"dry_run={own['dry_run']!r} must be true or false")
    return run_doctor(
        own.get("tracking_uri", cfg.mlflow.tracking_uri),
        [own["experiment"]] if "experiment" in own else None,
        stale_after_s=stale_after_s,
        dry_run=dry_run == "true",
    )


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "train": cmd_train,
    "hpo": cmd_hpo,
    "evaluate": cmd_evaluate,
    "register": cmd_register,
    "predict": cmd_predict,
    "sync": cmd_sync,
    "doctor": cmd_doctor,
}


if __name__ == "__main__":
    sys.exit(main())
