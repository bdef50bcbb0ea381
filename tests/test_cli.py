import json
import subprocess
import sys

import pytest
from helpers import interrupt_when_training

from rnnlab.__main__ import main
from rnnlab.store import RunStore

TINY = ["--task", "adding", "--hidden-size", "8", "--batch-size", "8", "--seq-len", "10"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnlab", *args], capture_output=True, text=True, timeout=300
    )


def test_train_json_contract_in_a_real_process():
    result = run_cli(
        "train",
        "--task",
        "hello",
        "--cell",
        "rnn",
        "--activation",
        "tanh",
        "--hidden-size",
        "16",
        "--num-layers",
        "1",
        "--batch-size",
        "4",
        "--seq-len",
        "5",
        "--lr",
        "1e-2",
        "--steps",
        "300",
        "--seed",
        "0",
        "--optimizer",
        "adam",
        "--clip",
        "1.0",
        "--init",
        "default",
        "--device",
        "auto",
        "--word",
        "hello",
        "--stop-when-solved",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "completed"
    assert summary["solved"] is True and isinstance(summary["solved_at_step"], int)
    assert summary["steps"] == summary["solved_at_step"]
    assert summary["metric_name"] == "accuracy" and summary["metric"] == 1.0
    assert summary["seed"] == 0 and summary["config"]["cell"] == "rnn"
    for key in ("final_loss", "best_loss", "baseline", "wall_s", "steps_per_s"):
        assert isinstance(summary[key], float)


def test_train_without_json_prints_a_readable_summary(capsys):
    assert main(["train", *TINY, "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "completed after 3 steps" in out and "baseline" in out


def test_a_diverged_run_exits_zero_with_valid_json(capsys):
    args = [
        "train",
        "--task",
        "adding",
        "--cell",
        "rnn",
        "--activation",
        "relu",
        "--init",
        "identity",
        "--hidden-size",
        "32",
        "--seq-len",
        "100",
        "--lr",
        "10",
        "--clip",
        "0",
        "--optimizer",
        "sgd",
        "--steps",
        "200",
        "--json",
    ]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "diverged"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--cell", "transformer"], "cell='transformer' is not one of"),
        (["train", "--activation", "gelu"], "activation='gelu' is not one of"),
        (["train", "--hidden-size", "0"], "hidden_size=0 is out of range; allowed 1 to 512"),
        (["train", "--hidden-size", "lots"], "hidden_size must be a whole number"),
        (["train", "--lr", "fast"], "lr must be a number"),
        (["train", "--steps", "-5"], "steps=-5 is out of range"),
        (["train", "--seed", "1.5"], "seed must be a whole number"),
        (["train", "--init", "identity", "--cell", "lstm"], "identity"),
        (["train", "--device", "tpu"], "device='tpu' is not one of"),
        (["train", "--word", "x"], "word must be 2 to 40"),
        (["train", "--bogus", "1"], "unrecognized arguments: --bogus"),
        (["train", "--hidden"], "unrecognized arguments: --hidden"),
        (["train", "--cell"], "expected one argument"),
        (["fly"], "invalid choice: 'fly'"),
        (
            [
                "train",
                "--task",
                "adding",
                "--hidden-size",
                "512",
                "--seq-len",
                "1000",
                "--batch-size",
                "512",
                "--steps",
                "200000",
            ],
            "TFLOP",
        ),
        (["train", "--task", "adding", "--seq-len", "1"], "adding task needs seq_len"),
        (["train", "--task", "text", "--text-file", "/no/such.txt"], "cannot read text file"),
    ],
)
def test_every_bad_option_exits_2_with_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as caught:
        main(args)
    assert caught.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnlab: error: ")
    assert message in lines[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"\x00\x01\x02binary", "binary"), (b"\xff\xfe\xfa" * 50, "UTF-8")],
)
def test_bad_text_files_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "upload.txt"
    path.write_bytes(content)
    with pytest.raises(SystemExit) as caught:
        main(["train", "--task", "text", "--text-file", str(path)])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_unavailable_device_exits_2(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as caught:
        main(["train", *TINY, "--device", "cuda"])
    assert caught.value.code == 2
    assert "device='cuda' is not available" in capsys.readouterr().err


def test_bad_option_exits_2_in_a_real_process():
    result = run_cli("train", "--hidden-size", "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "rnnlab: error: hidden_size=0 is out of range; allowed 1 to 512"
    ]


def test_no_command_prints_the_usage_with_its_commands_and_exits_2(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: rnnlab")
    assert all(command in err for command in ("train", "sweep", "runs"))


LONG = ["--task", "adding", "--hidden-size", "8", "--batch-size", "8", "--seq-len", "10"]


def test_ctrl_c_stops_a_training_run_in_order_and_exits_130(tmp_path):
    status, out, err = interrupt_when_training(
        ["train", *LONG, "--steps", "200000", "--json"], tmp_path
    )
    assert status == 130, err
    assert "Traceback" not in err and "stopping the run" in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "stopped" and 0 < summary["steps"] < 200_000
    with RunStore(tmp_path / "runs.sqlite") as store:
        run = store.get_run(summary["run_id"])
        assert run.status == "stopped" and run.summary["steps"] == summary["steps"]
        history = store.history(run.id)
        assert len(history) == summary["steps"]  # nothing buffered was lost
        assert history["step"].iloc[-1] == summary["steps"]
        assert store.evaluations(run.id)["step"].iloc[-1] == summary["steps"]


def test_ctrl_c_stops_a_sweep_prints_what_finished_and_exits_130(tmp_path):
    command = ["sweep", *LONG, "--steps", "200000", "--seeds", "0,1,2,3,4,5", "--workers", "1"]
    status, out, err = interrupt_when_training([*command, "--json"], tmp_path)
    assert status == 130, err
    assert "Traceback" not in err
    lines = [json.loads(line) for line in out.strip().splitlines()]
    summary = lines[-1]["summary"]
    rows = lines[:-1]
    assert rows and all(row["status"] == "stopped" for row in rows)
    assert summary["finished"] == len(rows) and summary["statuses"] == {"stopped": len(rows)}
    with RunStore(tmp_path / "runs.sqlite") as store:
        runs = store.list_runs()
        assert {run.status for run in runs} == {"stopped"}  # none left running or queued
        assert {run.id for run in runs} == {row["run_id"] for row in rows}
