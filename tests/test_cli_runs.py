import io
import json
import sqlite3

import pandas as pd
import pytest
import torch

from rnnlab import evaluate, load_model
from rnnlab.__main__ import main
from rnnlab.config import RunConfig
from rnnlab.store import SCHEMA_VERSION, RunStore

TINY = ["--task", "hello", "--cell", "rnn", "--hidden-size", "4", "--steps", "12"]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_HOME", str(tmp_path))
    threads = torch.get_num_threads()
    yield tmp_path
    torch.set_num_threads(threads)


def cli(capsys, *args: str) -> str:
    assert main(list(args)) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # no progress bar off a terminal
    return captured.out


def train_json(capsys, *args: str) -> dict:
    return json.loads(cli(capsys, "train", *TINY, *args, "--json"))


def test_train_records_its_run_and_prints_its_id(capsys, home):
    summary = train_json(capsys, "--eval-every", "4")
    for key in ("status", "steps", "final_loss", "metric", "solved", "wall_s", "config"):
        assert key in summary
    with RunStore(home / "runs.sqlite") as store:
        run = store.get_run(summary["run_id"])
        assert run.status == "completed" and run.owner == "cli"
        assert run.summary == {k: v for k, v in summary.items() if k != "run_id"}
        assert len(store.history(run.id)) == 12
        assert store.evaluations(run.id)["step"].tolist() == [4, 8, 12]
    text = cli(capsys, "train", *TINY)
    assert "completed after 12 steps" in text and "rnnlab runs show" in text


def test_runs_list_show_export_delete(capsys, home, tmp_path):
    first = train_json(capsys)["run_id"]
    second = train_json(capsys, "--cell", "gru")["run_id"]

    listed = json.loads(cli(capsys, "runs", "list", "--json"))
    assert [run["id"] for run in listed] == [second, first]
    assert listed[0]["config"]["cell"] == "gru" and listed[0]["status"] == "completed"
    assert [
        r["id"] for r in json.loads(cli(capsys, "runs", "list", "--json", "--cell", "rnn"))
    ] == [first]
    assert json.loads(cli(capsys, "runs", "list", "--json", "--status", "failed")) == []
    assert len(json.loads(cli(capsys, "runs", "list", "--json", "--limit", "1"))) == 1
    table = cli(capsys, "runs", "list").splitlines()
    assert table[0].split()[:3] == ["id", "created", "status"]
    assert table[1].startswith(second) and "gru" in table[1] and "12/12" in table[1]

    shown = cli(capsys, "runs", "show", first[:5])
    assert f"run {first}: completed" in shown and "12 steps" in shown and "snapshot at" in shown
    details = json.loads(cli(capsys, "runs", "show", first, "--json"))
    assert details["id"] == first and details["steps_recorded"] == 12

    csv = pd.read_csv(io.StringIO(cli(capsys, "runs", "export", first, "--format", "csv")))
    assert csv["step"].tolist() == list(range(1, 13)) and "eval_metric" in csv
    exported = json.loads(cli(capsys, "runs", "export", first, "--format", "json"))
    assert exported["run"]["id"] == first and len(exported["steps"]["loss"]) == 12
    target = tmp_path / "out" / "run.json"
    target.parent.mkdir()
    assert cli(capsys, "runs", "export", first, "-o", str(target)) == ""
    assert json.loads(target.read_text()) == exported

    assert cli(capsys, "runs", "delete", first) == f"deleted {first}\n"
    assert [run["id"] for run in json.loads(cli(capsys, "runs", "list", "--json"))] == [second]
    cli(capsys, "runs", "delete", second)
    assert "no runs in" in cli(capsys, "runs", "list")


def test_sweep_json_prints_a_line_per_run_then_the_summary(capsys, home):
    out = cli(
        capsys,
        "sweep",
        *TINY,
        "--cell",
        "rnn,gru",
        "--seq-len",
        "5,10",
        "--seeds",
        "0,1",
        "--workers",
        "2",
        "--json",
    )
    lines = [json.loads(line) for line in out.splitlines()]
    runs, final = lines[:-1], lines[-1]
    assert len(runs) == 8 and list(final) == ["summary"]
    assert {(r["cell"], r["seq_len"], r["seed"]) for r in runs} == {
        (cell, seq_len, seed) for cell in ("rnn", "gru") for seq_len in (5, 10) for seed in (0, 1)
    }
    for run in runs:
        assert run["status"] == "completed" and run["sweep_id"] == final["summary"]["sweep_id"]
        assert {"metric", "solved", "steps_to_solve", "wall_s", "run_id"} <= set(run)
    summary = final["summary"]
    assert summary["runs"] == 8 and summary["statuses"] == {"completed": 8}
    assert summary["axes"] == {"cell": ["rnn", "gru"], "seq_len": [5, 10]}
    with RunStore(home / "runs.sqlite") as store:
        assert len(store.list_runs(sweep_id=summary["sweep_id"])) == 8


def test_sweep_prints_a_table_without_json(capsys):
    out = cli(capsys, "sweep", *TINY, "--hidden-size", "2,4")
    assert "per cell, over seeds" in out and "sweep " in out and "2 completed" in out


def one_error_line(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnlab: error: "), captured.err
    assert captured.out == ""
    return lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs"], "required"),
        (["runs", "lists"], "invalid choice"),
        (["runs", "list", "--status", "done"], "invalid choice"),
        (["runs", "list", "--limit", "ten"], "--limit must be a whole number"),
        (["runs", "list", "--limit", "0"], "--limit=0 is out of range"),
        (["runs", "list", "--colour", "red"], "unrecognized arguments"),
        (["runs", "show"], "required: id"),
        (["runs", "show", "abcdef123456"], "no run with id"),
        (["runs", "show", "not-an-id"], "no run with id"),
        (["runs", "export", "abcdef123456"], "no run with id"),
        (["runs", "export", "abcdef123456", "--format", "xml"], "invalid choice"),
        (["runs", "delete"], "required: ID"),
        (["runs", "delete", "abcdef123456"], "no run with id"),
        (["runs", "pin"], "required: ID"),
        (["runs", "pin", "abcdef123456"], "no run with id"),
        (["runs", "unpin", "not-an-id"], "no run with id"),
        (["runs", "prune", "--budget-mb", "lots"], "--budget-mb must be a number, got 'lots'"),
        (["runs", "prune", "--budget-mb", "0"], "--budget-mb is 0, out of range"),
        (["runs", "prune", "--owner-share", "2"], "--owner-share is 2, out of range"),
        (["runs", "prune", "--keep-weights", "1.5"], "--keep-weights must be a whole number"),
        (["runs", "prune", "--history-points", "-3"], "--history-points is -3, out of range"),
        (["runs", "prune", "--keep"], "unrecognized arguments"),
        (["sweep", *TINY, "--cell", "rnn,gru", "--seq-len", "5,9", "--lr", "0.1,0.2"], "at most 2"),
        (["sweep", *TINY, "--cell", "rnn,elman"], "cell='elman' is not one of"),
        (["sweep", *TINY, "--cell", "rnn,"], "--cell has an empty value"),
        (["sweep", *TINY, "--seq-len", "5,5"], "values of seq_len repeat"),
        (["sweep", *TINY, "--seq-len", "5,5000"], "seq_len=5000 is out of range"),
        (["sweep", *TINY, "--seed", "1", "--seeds", "0,1"], "--seed or --seeds"),
        (["sweep", *TINY, "--seed", "1,2"], "use --seeds"),
        (["sweep", *TINY, "--seeds", "0,x"], "seed must be a whole number"),
        (["sweep", *TINY, "--seeds", "0,-1"], "seed=-1 is out of range"),
        (["sweep", *TINY, "--workers", "0"], "--workers=0 is out of range"),
        (["sweep", *TINY, "--workers", "many"], "--workers must be a whole number"),
        (["sweep", *TINY, "--init", "identity", "--cell", "rnn,gru"], "with cell=gru"),
        (["sweep", *TINY, "--hidden-size", ",".join(map(str, range(1, 300)))], "more than"),
        (["sweep", *TINY, "--task", "text", "--text-file", "/no/such.txt"], "cannot read"),
        (["sweep", "--jsn"], "unrecognized arguments"),
        (["train", *TINY, "--steps", "0"], "steps=0 is out of range"),
    ],
)
def test_every_bad_option_exits_2_with_one_line(capsys, args, message):
    assert message in one_error_line(capsys, *args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_sweep_on_an_absent_device_exits_2(capsys):
    assert "not available" in one_error_line(capsys, "sweep", *TINY, "--device", "cuda")


def test_ambiguous_prefix_and_missing_output_folder_exit_2(capsys, home):
    with RunStore(home / "runs.sqlite") as store:
        config = RunConfig(task="hello", steps=1)
        document = json.loads(store.export_run(store.create_run(config), "json"))
        for run_id in ("abcd00000001", "abcd00000002"):
            document["run"]["id"] = run_id
            store.import_run(document)
    assert "matches several runs" in one_error_line(capsys, "runs", "show", "abcd")
    target = str(home / "missing" / "run.csv")
    message = one_error_line(capsys, "runs", "export", "abcd00000001", "-o", target)
    assert "cannot write" in message


def test_deleting_an_active_run_exits_2_and_deletes_nothing(capsys, home):
    with RunStore(home / "runs.sqlite") as store:
        finished = store.create_run(RunConfig(task="hello", steps=1))
        store.finish(finished, "completed")
        active = store.create_run(RunConfig(task="hello", steps=1))
    message = one_error_line(capsys, "runs", "delete", finished, active)
    assert f"run {active} is queued; stop it" in message
    assert len(json.loads(cli(capsys, "runs", "list", "--json"))) == 2


def test_a_store_that_cannot_be_opened_exits_2(capsys, home, monkeypatch):
    with sqlite3.connect(home / "runs.sqlite") as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    assert "newer rnnlab" in one_error_line(capsys, "runs", "list")
    assert "newer rnnlab" in one_error_line(capsys, "train", *TINY)
    not_a_folder = home / "a-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("RNNLAB_HOME", str(not_a_folder))
    assert "cannot open the run store" in one_error_line(capsys, "runs", "list")


def test_runs_export_pt_writes_the_trained_weights(capsys, home):
    run_id = train_json(capsys, "--steps", "20")["run_id"]
    target = home / "weights.pt"
    assert cli(capsys, "runs", "export", run_id[:6], "--format", "pt", "-o", str(target)) == ""
    model, config = load_model(target)
    with RunStore(home / "runs.sqlite") as store:
        final_loss = store.get_run(run_id).summary["final_loss"]
        queued = store.create_run(RunConfig(task="hello", steps=1))
    assert evaluate(model, config)[0] == pytest.approx(final_loss, abs=1e-6)

    message = one_error_line(capsys, "runs", "export", run_id, "--format", "pt")
    assert "binary file; give -o FILE" in message
    message = one_error_line(capsys, "runs", "export", queued, "--format", "pt", "-o", str(target))
    assert f"run {queued} has no weights (queued)" in message


def test_runs_pin_unpin_and_prune(capsys, home):
    first, second, third = (train_json(capsys, "--seed", str(seed))["run_id"] for seed in range(3))
    assert cli(capsys, "runs", "pin", first[:6]) == f"pinned {first}\n"
    listed = cli(capsys, "runs", "list").splitlines()
    assert listed[0].split()[-1] == "pinned"
    assert [line.split()[-1] for line in listed[1:]] == ["-", "-", "yes"]
    assert ", pinned" in cli(capsys, "runs", "show", first)

    report = json.loads(cli(capsys, "runs", "prune", "--keep-weights", "1", "--json"))
    assert report["weights_dropped"] == [second]
    assert report["before"]["file_bytes"] > 0 and report["budget_bytes"] == 1024 * 2**20
    with RunStore(home / "runs.sqlite") as store:
        assert [store.weights_size(r) is not None for r in (first, second, third)] == [
            True,
            False,
            True,
        ]
    assert "no weights" in cli(capsys, "runs", "show", second)

    assert cli(capsys, "runs", "unpin", first) == f"unpinned {first}\n"
    text = cli(capsys, "runs", "prune", "--keep-weights", "1", "--budget-mb", "512")
    assert f"dropped the weights of 1 run: {first}" in text
    assert "MB before" in text and "MB after" in text and "budget 512.0 MB" in text
    assert cli(capsys, "runs", "prune").startswith("nothing to drop\nstore: ")


def test_a_bad_retention_setting_in_the_environment_exits_2(capsys, monkeypatch):
    monkeypatch.setenv("RNNLAB_DISK_BUDGET_MB", "a lot")
    message = one_error_line(capsys, "runs", "prune")
    assert "RNNLAB_DISK_BUDGET_MB must be a number" in message
