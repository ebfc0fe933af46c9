"""TrainingConfig: checked values, and config.json files of earlier runs still read."""

import json

import pytest

from minifcn.training import ConfigError, TrainingConfig


def test_every_problem_is_listed_in_one_error():
    config = TrainingConfig(epochs=0, batch_size=-1, dropout=1.0, data="camvid")
    with pytest.raises(ConfigError) as error:
        config.validate()
    message = str(error.value)
    for fragment in ("--epochs must be positive, got 0", "--batch-size must be positive, got -1",
                     "--dropout must be in [0, 1)", "--data camvid needs --data-root"):
        assert fragment in message


def test_json_round_trip_keeps_tuples():
    config = TrainingConfig(scale=(0.5, 2.0), synthetic_size=(10, 4))
    again = TrainingConfig.from_json(config.to_json())
    assert again == config and isinstance(again.scale, tuple)


def test_an_older_config_json_reads_with_defaults_for_what_it_lacks():
    """A run from before Adam and --threads existed, with an option since removed."""
    old = {key: value for key, value in TrainingConfig().to_dict().items() if key not in ("optimizer", "threads")}
    old["a_removed_option"] = 1
    config = TrainingConfig.from_json(json.dumps(old))
    assert config.optimizer == "sgd" and config.threads is None
