"""Compose and validate the Hydra config; every user mistake becomes one clear line.

The CLI and the tests call `load_config(overrides)`; nothing here starts a run,
so a bad value is rejected before anything is written to a store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

CONFIG_MODULE = "psy_agents_noaug.conf"
#: The synthetic corpora ``data.profile`` can name (see psy_agents_noaug.data.corpus).
CORPUS_PROFILES = ("sample", "redsm5")
GROUPS = ("task", "model", "training", "data", "mlflow", "stage")
VAL_METRICS = (
    "val_f1_macro",
    "val_f1_micro",
    "val_auprc_macro",
    "val_accuracy",
    "val_loss",
    "val_precision_macro",
    "val_recall_macro",
    "val_auroc",
)


class ConfigError(ValueError):
    """A config key or value the user gave is not valid; the message says which and why."""


def load_config(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose `conf/config.yaml` with command-line style overrides and validate it.

    Args:
        overrides: Hydra overrides such as ``["model=tiny", "training.num_epochs=2"]``.

    Returns:
        The composed config, read-only keys in struct mode.

    Raises:
        ConfigError: unknown group option, unknown key, or a value of the wrong type/range.

    Example:
        >>> cfg = load_config(["model=tiny", "training.num_epochs=1"])
        >>> cfg.training.num_epochs
        1
    """
    for override in overrides:
        if override.startswith("+"):
            key = override.lstrip("+").split("=", 1)[0]
            raise ConfigError(
                f"unknown config key {key!r}: adding keys is not supported; "
                f"override an existing key instead ({_keys_hint(key)})"
            )
    try:
        with initialize_config_module(CONFIG_MODULE, version_base=None):
            cfg = compose("config", overrides=list(overrides))
    except HydraException as exc:
        raise ConfigError(_one_line_hydra_error(exc)) from None
    except OmegaConfBaseException as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    validate_config(cfg)
    return cfg


def _keys_hint(dotted: str) -> str:
    parent = dotted.rsplit(".", 1)[0] if "." in dotted else ""
    try:
        with initialize_config_module(CONFIG_MODULE, version_base=None):
            base = compose("config")
    except HydraException:
        return "see `psy-agents train --help`"
    node = OmegaConf.select(base, parent) if parent else base
    if isinstance(node, DictConfig):
        where = f"under {parent!r}" if parent else "at the top level"
        return f"valid keys {where}: {', '.join(str(k) for k in node)}"
    return "see `psy-agents train --help`"


def _one_line_hydra_error(exc: HydraException) -> str:
    text = str(exc)
    missing = re.search(r"Could not find '([^/]+)/([^']+)'", text)
    if missing:
        group, option = missing.groups()
        options = re.findall(r"^\t(\S+)$", text, flags=re.M)
        return f"unknown {group} {option!r}; valid choices: {', '.join(options)}"
    override = re.search(r"Could not override '([^']+)'", text)
    if override:
        key = override.group(1)
        return f"unknown config key {key!r}; {_keys_hint(key)}"
    return text.splitlines()[0]


# --- value validation -------------------------------------------------------------------

Check = Callable[[Any], bool]


def _int(lo: int | None = None, hi: int | None = None) -> Check:
    def check(v: Any) -> bool:
        ok = isinstance(v, int) and not isinstance(v, bool)
        return ok and (lo is None or v >= lo) and (hi is None or v <= hi)

    return check


def _float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Check:
    def check(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        return hi is None or v <= hi

    return check


def _choice(*choices: Any) -> Check:
    return lambda v: v in choices


def _optional(check: Check) -> Check:
    return lambda v: v is None or check(v)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _str(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != ""


def _pos_weight(v: Any) -> bool:
    return v in ("auto", "none", None) or _float(0.0, 1000.0, lo_open=True)(v)


def _device(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", v) is not None


RULES: dict[str, tuple[Check, str]] = {
    "seed": (_int(0), "an integer >= 0"),
    "device": (_device, "auto, cpu, cuda or cuda:N"),
    "register": (_bool, "true or false"),
    "resume_from": (_optional(_str), "a run id or a checkpoint path, or null"),
    "progress": (_bool, "true or false"),
    "task.name": (_choice("criteria"), "criteria"),
    "task.metric": (_choice(*VAL_METRICS), ", ".join(VAL_METRICS)),
    "model.name": (_str, "a non-empty name"),
    "model.encoder_name": (_str, "a Hugging Face name or a local path"),
    "model.framing": (_choice("multilabel", "pair"), "multilabel or pair"),
    "model.aggregation": (_choice("max", "noisy_or", "lse"), "max, noisy_or or lse"),
    "model.dropout": (_float(0.0, 0.99), "a number in [0, 0.99]"),
    "model.max_length": (_int(8, 4096), "an integer in [8, 4096]"),
    "model.head_init": (_choice("descriptions", "random"), "descriptions or random"),
    "model.frozen_layers": (_int(0, 48), "an integer in [0, 48]"),
    "training.num_epochs": (_int(1), "an integer >= 1"),
    "training.batch_size": (_int(1), "an integer >= 1"),
    "training.eval_batch_size": (_int(1), "an integer >= 1"),
    "training.optimizer.name": (_choice("adamw", "adam", "sgd"), "adamw, adam or sgd"),
    "training.optimizer.lr": (_float(0.0, 10.0, lo_open=True), "a number in (0, 10]"),
    "training.optimizer.weight_decay": (_float(0.0, 1.0), "a number in [0, 1]"),
    "training.scheduler.name": (
        _choice("linear", "cosine", "constant"),
        "linear, cosine or constant",
    ),
    "training.scheduler.warmup_ratio": (_float(0.0, 0.99), "a number in [0, 0.99]"),
    "training.gradient_accumulation_steps": (_int(1), "an integer >= 1"),
    "training.max_grad_norm": (_optional(_float(0.0, lo_open=True)), "a number > 0 or null"),
    "training.amp": (_bool, "true or false"),
    "training.early_stopping.patience": (_int(0), "an integer >= 0 (0 disables)"),
    "training.early_stopping.metric": (_choice(*VAL_METRICS), ", ".join(VAL_METRICS)),
    "training.early_stopping.mode": (_choice("max", "min"), "max or min"),
    "training.logging_steps": (_int(1), "an integer >= 1"),
    "training.log_system_metrics": (_bool, "true or false"),
    "training.system_metrics_interval": (_int(1), "an integer >= 1"),
    "training.save_dir": (_optional(_str), "a folder path or null"),
    "training.num_workers": (_int(0, 64), "an integer in [0, 64]"),
    "training.pos_weight": (_pos_weight, "auto, none or a number > 0"),
    "training.sentence_loss_weight": (_float(0.0, 100.0), "a number in [0, 100]"),
    "training.threshold_tolerance": (_float(0.0, 1.0), "a number in [0, 1]"),
    "training.save_optimizer": (_bool, "true or false"),
    "data.posts_path": (_optional(_str), "a CSV path or null (bundled sample)"),
    "data.annotations_path": (_optional(_str), "a CSV path or null (bundled sample)"),
    "data.profile": (_choice(*CORPUS_PROFILES), " or ".join(CORPUS_PROFILES)),
    "data.cache_dir": (_str, "a folder path"),
    "data.max_windows_per_post": (_int(1, 100_000), "an integer in [1, 100000]"),
    "data.window_overlap": (_int(0, 16), "an integer in [0, 16]"),
    "data.max_train_posts": (_optional(_int(1)), "an integer >= 1 or null (every post)"),
    "data.val_fraction": (_float(0.0, 0.5, lo_open=True), "a number in (0, 0.5]"),
    "data.test_fraction": (_float(0.0, 0.5, lo_open=True), "a number in (0, 0.5]"),
    "mlflow.enabled": (_bool, "true or false"),
    "mlflow.tracking_uri": (_str, "a tracking URI such as sqlite:///mlflow.db"),
    "mlflow.experiment_name": (_optional(_str), "a name or null"),
    "mlflow.run_name": (_optional(_str), "a name or null"),
    "mlflow.journal_dir": (_optional(_str), "a folder path or null"),
    "mlflow.orphan_after_s": (_float(0.0, lo_open=True), "a number of seconds > 0"),
    "mlflow.http_timeout_s": (_int(1, 600), "an integer number of seconds in [1, 600]"),
    "mlflow.http_max_retries": (_int(0, 10), "an integer in [0, 10]"),
}


def validate_config(cfg: DictConfig) -> None:
    """Check every known key's type and range; raise ConfigError naming the first bad one."""
    for key, (check, expected) in RULES.items():
        value = OmegaConf.select(cfg, key, default="<missing>")
        if value == "<missing>":
            raise ConfigError(f"config key {key!r} is missing; it must be {expected}")
        if not check(value):
            raise ConfigError(f"bad value {key}={value!r}: must be {expected}")
    if (cfg.data.posts_path is None) != (cfg.data.annotations_path is None):
        raise ConfigError(
            "data.posts_path and data.annotations_path go together: set both "
            "(your ReDSM5 CSVs) or neither (the bundled sample)"
        )
    if cfg.data.val_fraction + cfg.data.test_fraction >= 0.9:
        raise ConfigError(
            f"data.val_fraction + data.test_fraction = "
            f"{cfg.data.val_fraction + cfg.data.test_fraction:g} leaves too little to train on; "
            "keep the sum below 0.9"
        )


def config_to_dict(cfg: DictConfig) -> dict[str, Any]:
    """Plain nested dict of the resolved config (for checkpoints, params and config.yaml).

    Passwords inside URIs (``postgresql://user:secret@host/db``) become ``***``: what this
    returns is written to MLflow and to disk.
    """
    data = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(data, dict)
    return {str(k): _redact(v) for k, v in data.items()}


def _redact(value: Any) -> Any:
    from psy_agents_noaug.tracking.store import mask_uri

    if isinstance(value, str):
        return mask_uri(value)
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


#: The config sections that shape a training (its run's params); HPO and tracking settings
#: go on HPO parents and nowhere, respectively.
TRAINING_SECTIONS = ("seed", "device", "task", "model", "training", "data")


def training_params(cfg: DictConfig) -> dict[str, str]:
    """The dotted config keys that shape a training, as a training run's params."""
    data = config_to_dict(cfg)
    return flatten_params({k: data[k] for k in TRAINING_SECTIONS if k in data})


def flatten_params(cfg: DictConfig | dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted keys -> string values, the way MLflow params want them (`training.batch_size`)."""
    data = config_to_dict(cfg) if isinstance(cfg, DictConfig) else cfg
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_params(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat
