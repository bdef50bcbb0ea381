import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnlab.config import ConfigError, RunConfig, field_spec


def test_defaults_are_valid_and_round_trip_through_strings():
    config = RunConfig()
    strings = config.to_strings()
    assert all(isinstance(value, str) for value in strings.values())
    assert RunConfig.from_strings(strings) == config


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("hidden_size", 0, "hidden_size=0 is out of range; allowed 1 to 512"),
        ("hidden_size", 513, "hidden_size=513 is out of range; allowed 1 to 512"),
        ("num_layers", 5, "num_layers=5 is out of range; allowed 1 to 4"),
        ("lr", 0.0, "lr=0.0 is out of range; allowed 1e-06 to 10"),
        ("clip", -1.0, "clip=-1.0 is out of range; allowed 0 to 1000"),
        ("seed", -1, "seed=-1 is out of range"),
        ("cell", "transformer", "cell='transformer' is not one of: rnn, lstm, gru"),
        ("activation", "gelu", "activation='gelu' is not one of: tanh, sigmoid, relu"),
        ("task", "mnist", "task='mnist' is not one of: hello, text, adding, copy, sine"),
        ("hidden_size", 3.5, "hidden_size must be a whole number, got 3.5"),
        ("lr", "fast", "lr must be a number, got 'fast'"),
        ("lr", float("nan"), "lr must be a finite number"),
        ("stop_when_solved", "yes", "stop_when_solved must be true or false"),
    ],
)
def test_invalid_value_names_field_value_and_range(name, value, expected):
    with pytest.raises(ConfigError) as caught:
        RunConfig(**{name: value})
    assert expected in str(caught.value)
    assert caught.value.field == name


def test_integral_float_is_accepted_as_int():
    assert RunConfig(hidden_size=16.0).hidden_size == 16


def test_identity_init_is_for_rnn_and_forget_bias_for_lstm():
    assert RunConfig(cell="rnn", activation="relu", init="identity").init == "identity"
    assert RunConfig(cell="lstm", init="forget_bias").init == "forget_bias"
    with pytest.raises(ConfigError, match="identity.*rnn"):
        RunConfig(cell="gru", init="identity")
    with pytest.raises(ConfigError, match="forget_bias.*lstm"):
        RunConfig(cell="rnn", init="forget_bias")


def test_word_must_be_short_and_printable():
    with pytest.raises(ConfigError, match="word"):
        RunConfig(word="a")
    with pytest.raises(ConfigError, match="word"):
        RunConfig(word="hel\nlo")
    with pytest.raises(ConfigError, match="word"):
        RunConfig(word="x" * 41)


def test_a_run_too_large_for_the_machine_is_refused_with_what_to_lower():
    with pytest.raises(ConfigError) as caught:
        RunConfig(task="adding", hidden_size=512, seq_len=1000, batch_size=512, steps=200_000)
    message = str(caught.value)
    assert "TFLOP" in message and "lower steps" in message


def test_the_documented_adding_run_is_allowed():
    config = RunConfig(
        task="adding", cell="lstm", hidden_size=64, batch_size=64, seq_len=100, steps=3000
    )
    assert config.time_steps() == 100


def test_time_steps_follow_the_task():
    assert RunConfig(task="hello", word="hello").time_steps() == 4
    assert RunConfig(task="copy", seq_len=30).time_steps() == 50
    assert RunConfig(task="sine", seq_len=30).time_steps() == 30


def test_from_strings_parses_and_rejects():
    config = RunConfig.from_strings(
        {"hidden_size": "64", "lr": "1e-3", "stop_when_solved": "true", "cell": "gru"}
    )
    assert (config.hidden_size, config.lr, config.stop_when_solved, config.cell) == (
        64,
        1e-3,
        True,
        "gru",
    )
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        RunConfig.from_strings({"colour": "red"})
    with pytest.raises(ConfigError, match="hidden_size must be a whole number, got 'big'"):
        RunConfig.from_strings({"hidden_size": "big"})


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunConfig().hidden_size = 3


def _valid_values():
    def numbers(name):
        lo, hi = field_spec(name)["range"]
        if field_spec(name)["type"] == "int":
            return st.integers(int(lo), int(hi))
        return st.floats(lo, hi, allow_nan=False)

    return st.fixed_dictionaries(
        {
            "task": st.sampled_from(["hello", "adding", "copy", "sine"]),
            "cell": st.sampled_from(["rnn", "lstm", "gru"]),
            "activation": st.sampled_from(["tanh", "sigmoid", "relu"]),
            "hidden_size": st.integers(1, 64),
            "num_layers": numbers("num_layers"),
            "lr": numbers("lr"),
            "clip": numbers("clip"),
            "seed": numbers("seed"),
            "steps": st.integers(1, 1000),
            "stop_when_solved": st.booleans(),
        }
    )


@settings(max_examples=200, deadline=None)
@given(_valid_values())
def test_any_valid_config_round_trips(values):
    config = RunConfig(**values)
    assert RunConfig.from_strings(config.to_strings()) == config


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["hidden_size", "num_layers", "batch_size", "seq_len", "steps"]),
    st.one_of(st.integers(max_value=0), st.integers(min_value=200_001)),
)
def test_any_out_of_range_integer_raises_naming_the_field(name, value):
    with pytest.raises(ConfigError) as caught:
        RunConfig(**{name: value})
    assert caught.value.field == name
    assert name in str(caught.value) and "allowed" in str(caught.value)
