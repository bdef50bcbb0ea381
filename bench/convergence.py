"""Does the adding problem at T = 100 get solved, and how fast? (the note's point 7)

    python bench/convergence.py                 # LSTM, GRU, tanh RNN; seeds 0, 1, 2
    python bench/convergence.py --cells lstm --seeds 0

Batch 64, hidden 64, Adam 3e-3, clipping 1.0, at most 3000 steps, stopping when the
held-out MSE drops below 0.01. Expected: LSTM and GRU solve it; a tanh RNN stays near
the 0.167 baseline of always answering 1.0.
"""

from __future__ import annotations

import argparse

import torch

from rnnlab import RunConfig, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="lstm,gru,rnn")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'cell':5s} {'seed':>4s} {'status':>9s} {'solved at':>9s} {'MSE':>8s} {'seconds':>8s}")
    for cell in args.cells.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            config = RunConfig(
                task="adding", cell=cell, hidden_size=64, batch_size=64, seq_len=100,
                lr=3e-3, clip=1.0, steps=args.steps, seed=seed, stop_when_solved=True,
            )  # fmt: skip
            summary = run(config, snapshot_every_s=None)
            solved = summary["solved_at_step"]
            print(
                f"{cell:5s} {seed:4d} {summary['status']:>9s} "
                f"{solved if solved is not None else '-':>9} {summary['final_loss']:8.4f} "
                f"{summary['wall_s']:8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
