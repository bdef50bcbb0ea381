import math
import random
import re

import pytest
import torch
import torch.nn.functional as F

from rnnlab.config import ConfigError, RunConfig
from rnnlab.specs import task_spec
from rnnlab.tasks import AddingTask, CopyTask, HelloTask, SineTask, TextTask, make_task
from rnnlab.text import bundled_text, decode_text, read_text_file


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_hello_is_the_notes_example():
    task = HelloTask("hello")
    assert task.vocab == ["h", "e", "l", "o"]
    assert task.input_dim == 4
    x, y = task.sample(32, generator())
    assert x.shape == (1, 4, 4)  # (batch, seq_len, input_dim): h, e, l, l
    assert task.decode(x[0].argmax(-1)) == "hell"
    assert task.decode(y[0]) == "ello"  # h->e, e->l, l->l, l->o
    assert torch.equal(x.sum(-1), torch.ones(1, 4))  # one-hot
    assert task.baseline == pytest.approx(math.log(4))


def test_hello_is_solved_only_when_every_position_is_right():
    task = HelloTask("hello")
    x, y = task.held_out()
    perfect = F.one_hot(y, 4).float() * 10
    assert task.is_solved(task.loss(perfect, y).item(), task.metric(perfect, y))
    one_wrong = perfect.clone()
    one_wrong[0, 2] = F.one_hot(torch.tensor(3), 4).float() * 10  # l -> o instead of l
    assert task.metric(one_wrong, y) == 0.75
    assert not task.is_solved(0.0, task.metric(one_wrong, y))


@pytest.mark.parametrize("T", [2, 10, 100])
def test_adding_shapes_targets_and_the_0167_baseline(T):
    task = AddingTask(T)
    x, y = task.sample(20_000, generator())
    assert x.shape == (20_000, T, 2) and y.shape == (20_000, 1)
    markers = x[..., 1]
    assert torch.equal(markers.sum(1), torch.full((20_000,), 2.0))
    assert (markers[:, : T // 2].sum(1) == 1).all()  # one mark in each half
    assert torch.allclose(y[:, 0], (x[..., 0] * markers).sum(1))
    always_one = F.mse_loss(torch.ones_like(y), y).item()
    assert always_one == pytest.approx(1 / 6, abs=0.005)
    assert task.baseline == pytest.approx(0.1667, abs=1e-4)


def test_adding_solved_below_mse_001():
    task = AddingTask(50)
    assert task.is_solved(0.009, 0.009)
    assert not task.is_solved(0.011, 0.011)


@pytest.mark.parametrize("T", [1, 10, 100])
def test_copy_shapes_and_memoryless_baseline(T):
    task = CopyTask(T)
    x, y = task.sample(256, generator())
    assert x.shape == (256, T + 20, 10) and y.shape == (256, T + 20)
    symbols = x.argmax(-1)
    assert ((symbols[:, :10] >= 1) & (symbols[:, :10] <= 8)).all()
    assert (symbols[:, T + 9] == 9).all()  # the delimiter
    assert torch.equal(y[:, -10:], symbols[:, :10])
    assert (y[:, :-10] == 0).all()
    # A model without memory: blank before the recall, a uniform guess over 1..8 after.
    log_probs = torch.full((256, T + 20, 9), -1e9)
    log_probs[:, :-10, 0] = 0.0
    log_probs[:, -10:, 1:] = -math.log(8)
    loss = task.loss(log_probs, y).item()
    assert loss == pytest.approx(10 * math.log(8) / (T + 20), rel=1e-5)
    assert task.baseline == pytest.approx(10 * math.log(8) / (T + 20))


def test_copy_solved_when_99_percent_of_recalled_symbols_right():
    task = CopyTask(5)
    x, y = task.held_out()
    logits = F.one_hot(y, 9).float() * 10
    assert task.metric(logits, y) == 1.0 and task.is_solved(0.0, 1.0)
    assert not task.is_solved(0.0, 0.98)


def test_sine_targets_are_the_next_values_and_baseline_is_persistence():
    task = SineTask(40)
    x, y = task.sample(8, generator())
    assert x.shape == y.shape == (8, 40, 1)
    assert torch.equal(x[:, 1:], y[:, :-1])
    held_x, held_y = task.held_out()
    assert task.baseline == pytest.approx(F.mse_loss(held_x, held_y).item())
    assert task.is_solved(0.4 * task.baseline, 0.4 * task.baseline)
    assert not task.is_solved(0.6 * task.baseline, 0.6 * task.baseline)


def test_text_task_on_the_bundled_text():
    text = bundled_text()
    assert len(text.encode("utf-8")) <= 200 * 1024
    assert text.startswith("Genesis 1")
    task = TextTask(text, 64)
    x, y = task.sample(16, generator())
    assert x.shape == (16, 64, len(task.vocab)) and y.shape == (16, 64)
    assert torch.equal(x.argmax(-1)[:, 1:], y[:, :-1])  # y is x shifted by one character
    assert task.metric_name == "bits per char"
    assert 3.0 < task.metric_baseline < 5.0  # unigram entropy of English, bits per char
    output = torch.zeros(16, 64, len(task.vocab))
    assert task.metric(output, y) == pytest.approx(math.log2(len(task.vocab)), rel=1e-5)


def test_text_task_maps_rare_characters_of_a_large_alphabet_to_one_symbol():
    text = "".join(chr(0xAC00 + i % 600) for i in range(20_000))  # 600 Hangul syllables
    task = TextTask(text, 20)
    assert len(task.vocab) == 256 and "\ufffd" in task.vocab


def test_text_too_short_for_the_sequence_length():
    with pytest.raises(ConfigError, match="seq_len=100 needs at least 1010"):
        TextTask("short text " * 10, 100)


def noise_without_nul(size: int) -> bytes:
    """Random bytes with no NUL, so only the encoding detector can tell they are not text."""
    rng = random.Random(1)
    return bytes(rng.randrange(1, 256) for _ in range(size))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)) * 8, "binary"),
        (b"\x00\x00\x00\x01text" * 500, "binary"),
        (random.Random(0).randbytes(4096), "binary"),
        (noise_without_nul(4096), "binary"),
        (b"\x01\x02\x03\x1bdata" * 300, "binary"),
        (b"\xff\xfe" + b"\x00\xd8" * 10, "not valid UTF-16"),
        (b"\xff\xfe\xfa" * 50, "binary"),  # a BOM, then unassigned and private code points
        (b"a" * (5 * 1024 * 1024 + 1), "limit is 5 MB"),
    ],
    ids=[
        "empty",
        "blank",
        "png",
        "nul-heavy",
        "random",
        "random-no-nul",
        "control",
        "bad-utf16",
        "bom-then-junk",
        "large",
    ],
)
def test_bad_text_files_get_clear_messages(data, message):
    with pytest.raises(ConfigError, match=message) as caught:
        decode_text(data)
    assert caught.value.field == "text_file"


# From the study note rnnlab teaches from; short, as people's first uploads are.
KOREAN = (
    "RNN은 출력을 다시 입력으로 넣는 신경망입니다.\n"
    "시퀀스가 길어지면 기울기가 사라져서 앞부분을 배우지 못합니다.\n"
    "LSTM의 망각 게이트는 0이면 과거를 잊고, 1이면 그대로 기억합니다.\n"
)


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (KOREAN.encode("utf-8"), "UTF-8"),
        (KOREAN.encode("utf-8-sig"), "UTF-8"),
        (KOREAN.encode("utf-16"), "UTF-16"),  # with a byte-order mark, as Notepad saves
        (b"\xfe\xff" + KOREAN.encode("utf-16-be"), "UTF-16"),
        (KOREAN.encode("cp949"), "CP949"),
        (("똠방각하, " + KOREAN).encode("cp949"), "CP949"),  # 똠: in CP949, not in EUC-KR
        (KOREAN.encode("euc-kr"), "CP949"),  # EUC-KR is a part of CP949
        ("Tyger Tyger, burning bright\n".encode("ascii") * 10, "UTF-8"),
    ],
)
def test_text_files_in_korean_encodings_are_read_and_say_which(data, encoding):
    decoded = decode_text(data)
    assert decoded.encoding == encoding
    assert decoded.text.removeprefix("똠방각하, ") in (KOREAN, "Tyger Tyger, burning bright\n" * 10)
    text, _ = decoded  # a (text, encoding) pair
    assert text == decoded.text


def test_a_cp949_file_trains_the_text_task(tmp_path):
    path = tmp_path / "note.txt"
    path.write_bytes((KOREAN * 20).encode("cp949"))
    task = make_task(RunConfig(task="text", text_file=str(path), seq_len=20))
    assert "망" in task.vocab and task.decode(task.encode("게이트")) == "게이트"


def test_text_file_from_disk(tmp_path):
    path = tmp_path / "poem.txt"
    path.write_text("Tyger Tyger, burning bright,\n" * 100, encoding="utf-8")
    task = make_task(RunConfig(task="text", text_file=str(path), seq_len=20))
    assert task.decode(task.encode("Tyger")) == "Tyger"
    with pytest.raises(ConfigError, match="cannot read text file"):
        read_text_file(tmp_path / "missing.txt")


@pytest.mark.parametrize("name", ["hello", "text", "adding", "copy", "sine"])
def test_every_task_is_seeded_and_shaped(name):
    config = RunConfig(task=name, seq_len=12)
    task = make_task(config)
    x1, y1 = task.sample(4, generator(7))
    x2, y2 = task.sample(4, generator(7))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.dim() == 3 and x1.shape[1:] == (config.time_steps(), task.input_dim)
    held_x, held_y = task.held_out()
    assert held_x is task.held_out()[0]
    assert math.isfinite(task.baseline) and task.baseline > 0


# What a spec states, and so the dashboard's server shows, without PyTorch.
STATED = (
    "name",
    "input_dim",
    "output_dim",
    "seq_len",
    "predicts_every_step",
    "metric_name",
    "higher_is_better",
    "baseline_label",
    "solved_rule",
)


@pytest.mark.parametrize(
    "config",
    [
        RunConfig(task="hello"),
        RunConfig(task="hello", word="abracadabra"),
        RunConfig(task="text", seq_len=50),
        RunConfig(task="adding", seq_len=7),
        RunConfig(task="copy", seq_len=30),
        RunConfig(task="sine", seq_len=40),
    ],
    ids=lambda config: f"{config.task}-{config.word}-{config.seq_len}",
)
def test_a_task_spec_states_what_the_task_does(config):
    spec, task = task_spec(config), make_task(config)
    assert {name: getattr(spec, name) for name in STATED} == {
        name: getattr(task, name) for name in STATED
    }
    assert getattr(spec, "vocab", None) == getattr(task, "vocab", None)
    if config.task == "sine":  # measured on the held-out sequences: only the task knows it
        assert spec.baseline is None and spec.metric_baseline is None
    else:
        assert (spec.baseline, spec.metric_baseline) == pytest.approx(
            (task.baseline, task.metric_baseline)
        )


def test_the_text_baseline_is_the_entropy_of_the_training_characters():
    task = make_task(RunConfig(task="text", seq_len=50))
    counts = torch.bincount(task.train_data).double()
    p = counts[counts > 0] / counts.sum()
    assert task.baseline == pytest.approx(-(p * p.log()).sum().item())  # nats per char


def test_a_task_spec_refuses_what_the_task_refuses(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("abc" * 10, encoding="utf-8")
    for config in (
        RunConfig(task="adding", seq_len=1),
        RunConfig(task="sine", seq_len=1),
        RunConfig(task="text", text_file=str(short), seq_len=50),
    ):
        with pytest.raises(ConfigError) as refused:
            make_task(config)
        with pytest.raises(ConfigError, match=re.escape(str(refused.value))):
            task_spec(config)
