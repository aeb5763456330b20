"""Plain-dict search spaces, shared by Python callers and the stage YAML files.

A search space is a mapping from a parameter name to a small spec dict::

    {
        "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.3},
        "warmup_steps": {"type": "int", "low": 0, "high": 500, "step": 50},
        "batch_size": {"type": "categorical", "choices": [8, 16, 32]},
    }

The same dict lives under ``search_space:`` in ``conf/stage/*.yaml``, so a study run from
the CLI and one run from a notebook read the same format. Specs are validated up front, so a
typo fails before the first trial starts rather than in the middle of a study.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

__all__ = ["ParamSpec", "SearchSpace", "parse_search_space", "suggest_params"]

_TYPES = ("float", "int", "categorical")
_ALLOWED_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}
_CHOICE_TYPES = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class ParamSpec:
    """One validated search-space entry.

    Attributes:
        name: Parameter name as passed to ``trial.suggest_*``.
        type: ``"float"``, ``"int"`` or ``"categorical"``.
        low: Lower bound (float/int).
        high: Upper bound (float/int), inclusive.
        log: Sample on a log scale (float/int).
        step: Discretisation step (float/int), or None.
        choices: The allowed values (categorical).
    """

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        """Ask ``trial`` for a value of this parameter.

        Args:
            trial: The Optuna trial (or FrozenTrial/FixedTrial).

        Returns:
            The sampled value.
        """
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            assert self.low is not None and self.high is not None
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        assert self.low is not None and self.high is not None
        return trial.suggest_float(
            self.name, float(self.low), float(self.high), step=self.step, log=self.log
        )


SearchSpace = dict[str, ParamSpec]


def _to_plain(value: Any) -> Any:
    """Turn OmegaConf containers (or any Mapping/Sequence) into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_to_plain(v) for v in value]
    return value


def _number(name: str, key: str, value: Any, *, integer: bool) -> float | int:
    """Validate a numeric bound, naming the parameter and key on failure."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"search_space.{name}.{key} must be {kind}, got {value!r}")
    if integer and (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"search_space.{name}.{key} must be an integer, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"search_space.{name}.{key} must be finite, got {value!r}")
    return int(value) if integer else float(value)


def _parse_one(name: str, raw: Any) -> ParamSpec:
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"search_space.{name} must be a mapping like "
            f"{{type: float, low: 0.0, high: 1.0}}, got {raw!r}"
        )
    kind = raw.get("type")
    if kind not in _TYPES:
        raise ValueError(
            f"search_space.{name}.type must be one of {', '.join(_TYPES)}, got {kind!r}"
        )
    unknown = sorted(set(raw) - _ALLOWED_KEYS[kind])
    if unknown:
        raise ValueError(
            f"search_space.{name} has unknown key(s) {unknown} for type {kind}; "
            f"allowed: {sorted(_ALLOWED_KEYS[kind])}"
        )

    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, Sequence) or isinstance(choices, str) or not choices:
            raise ValueError(
                f"search_space.{name}.choices must be a non-empty list, got {choices!r}"
            )
        for choice in choices:
            if not isinstance(choice, _CHOICE_TYPES):
                raise ValueError(
                    f"search_space.{name}.choices may hold only None, bool, int, float or str; "
                    f"got {choice!r}"
                )
        if len(set(map(repr, choices))) != len(choices):
            raise ValueError(f"search_space.{name}.choices has duplicates: {list(choices)!r}")
        return ParamSpec(name=name, type=kind, choices=tuple(choices))

    integer = kind == "int"
    for key in ("low", "high"):
        if key not in raw:
            raise ValueError(f"search_space.{name} (type {kind}) needs '{key}'")
    low = _number(name, "low", raw["low"], integer=integer)
    high = _number(name, "high", raw["high"], integer=integer)
    if low > high:
        raise ValueError(f"search_space.{name}: low ({low!r}) must be <= high ({high!r})")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"search_space.{name}.log must be true or false, got {log!r}")
    step = raw.get("step")
    if step is not None:
        step = _number(name, "step", step, integer=integer)
        if step <= 0:
            raise ValueError(f"search_space.{name}.step must be > 0, got {step!r}")
        if log and (not integer or step != 1):
            raise ValueError(f"search_space.{name}: 'step' cannot be combined with log: true")
    if log and low <= 0:
        raise ValueError(f"search_space.{name}: log: true needs low > 0, got low={low!r}")
    return ParamSpec(name=name, type=kind, low=low, high=high, log=log, step=step)


def parse_search_space(search_space: Mapping[str, Any] | None) -> SearchSpace:
    """Validate a plain-dict search space.

    Args:
        search_space: ``{name: {type: float|int|categorical, ...}}``; OmegaConf configs are
            accepted. None or ``{}`` is an empty space (the objective samples for itself).

    Returns:
        ``{name: ParamSpec}`` in the order given.

    Raises:
        ValueError: A spec is malformed; the message names the parameter and the key.

    Example:
        >>> space = parse_search_space({"lr": {"type": "float", "low": 1e-5, "high": 1e-3,
        ...                                    "log": True}})
        >>> space["lr"].log
        True
    """
    if search_space is None:
        return {}
    if not isinstance(search_space, Mapping):
        raise ValueError(
            f"search_space must be a mapping of parameter name -> spec, got "
            f"{type(search_space).__name__}"
        )
    plain = _to_plain(search_space)
    return {name: _parse_one(name, raw) for name, raw in plain.items()}


def suggest_params(
    trial: optuna.trial.BaseTrial, search_space: Mapping[str, Any] | SearchSpace
) -> dict[str, Any]:
    """Sample every parameter of ``search_space`` on ``trial``.

    Args:
        trial: The trial to sample on. A retried trial returns its fixed values.
        search_space: A plain-dict space or the output of :func:`parse_search_space`.

    Returns:
        ``{name: value}``.
    """
    if search_space and all(isinstance(v, ParamSpec) for v in search_space.values()):
        space: SearchSpace = dict(search_space)  # type: ignore[arg-type]
    else:
        space = parse_search_space(search_space)
    return {name: spec.suggest(trial) for name, spec in space.items()}
