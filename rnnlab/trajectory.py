"""Where the hidden state travels: each layer's h_t projected on two principal components.

A picture of the path through time is only comparable with the next one if both use the
same axes, so the axes are a *reference basis*: the two principal components of one
snapshot's hidden states (every probe sequence, every step, every unit), with that
snapshot's mean, fitted at `reference_step` and kept for the snapshots after it. They are
fitted again only when training has moved the states out of their plane: when the
reference axes explain less than REFIT_SHARE of the variance that the snapshot's own two
principal components would explain. A slider over a run's snapshots then shows the same
axes from one `reference_step` to the next; a new fit keeps the signs of the old axes
where it can, so that a picture does not flip over when they are refitted.

The basis travels in the snapshot itself (its components and mean, rounded as stored),
and paths are projected on exactly those rounded numbers, so each snapshot is whole on
its own and anyone can project more states on its axes. `rnnlab.probe.snapshot` calls
`trajectory`; `rnnlab.probe.SnapshotSchedule` hands each snapshot the previous one's.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

COMPONENTS = 2  # principal components a path is drawn on
REFIT_SHARE = 0.5  # refit when the reference axes explain less than this share of the best
PATH_SEQUENCES = 4  # probe sequences whose paths a snapshot keeps
COMPONENT_DECIMALS = 4  # of the stored components and mean


def _round(tensor: Tensor, decimals: int) -> Tensor:
    return tensor.double().round(decimals=decimals)


def principal_axes(points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The mean (H,), the top COMPONENTS principal axes (C, H) as rows, and every
    eigenvalue of the covariance, largest first (H,), of points: (N, H).

    An eigendecomposition of the H × H covariance, cheaper than an SVD of the points
    when, as here, there are many more points than units.
    """
    points = points.double()
    mean = points.mean(0)
    centred = points - mean
    covariance = centred.T @ centred / points.shape[0]  # (H, H)
    values, vectors = torch.linalg.eigh(covariance)  # ascending
    values, vectors = values.flip(0).clamp_min(0), vectors.flip(1)
    axes = vectors[:, :COMPONENTS].T  # (C, H), fewer when H < C
    if axes.shape[0] < COMPONENTS:
        axes = torch.cat([axes, axes.new_zeros(COMPONENTS - axes.shape[0], axes.shape[1])])
    return mean, axes, values


def explained(points: Tensor, axes: Tensor) -> Tensor:
    """The share of the variance of points: (N, H) about their own mean along each of
    axes: (C, H) (unit rows), (C,)."""
    points = points.double()
    centred = points - points.mean(0)
    total = centred.square().sum()
    if not total > 0:
        return axes.new_zeros(axes.shape[0], dtype=torch.float64)
    return (centred @ axes.double().T).square().sum(0) / total


def _aligned(axes: Tensor, old: Tensor | None) -> Tensor:
    """axes with each row's sign flipped to point the way the old row did."""
    if old is None or old.shape != axes.shape:
        return axes
    signs = torch.where((axes * old).sum(1) < 0, -1.0, 1.0).to(axes.dtype)
    return axes * signs[:, None]


def trajectory(
    states: list[Tensor],
    reference: list[dict[str, Any] | None] | None,
    step: int,
    steps: Tensor,
    sequences: int = PATH_SEQUENCES,
) -> list[dict[str, Any] | None]:
    """Per layer, the snapshot's `trajectory` entry (see rnnlab.events.Snapshot) of the
    hidden states `states[k]`: (B, T, H), on the reference basis of the previous
    snapshot's entries (None for the first), refitted when it no longer fits.

    Paths are the first `sequences` probe sequences at the kept `steps`; the PCA and the
    explained shares use every sequence and step. None for a layer whose states are not
    all finite (nothing to fit); its reference stays for the next snapshot.
    """
    entries: list[dict[str, Any] | None] = []
    for layer, h in enumerate(states):
        old = reference[layer] if reference is not None else None
        points = h.detach().reshape(-1, h.shape[-1]).double().cpu()  # (B·T, H)
        if not bool(torch.isfinite(points).all()):
            entries.append(old)
            continue
        _, own_axes, values = principal_axes(points)
        best = values[:COMPONENTS].sum() / values.sum() if values.sum() > 0 else 0.0
        old_axes = torch.tensor(old["components"], dtype=torch.float64) if old else None
        if old_axes is not None:
            share = explained(points, old_axes).sum()
            keep = share >= REFIT_SHARE * best
        else:
            keep = False
        if keep:
            mean = torch.tensor(old["mean"], dtype=torch.float64)
            axes, reference_step = old_axes, old["reference_step"]
        else:
            mean, axes, _ = principal_axes(points)
            axes = _aligned(axes, old_axes)
            mean = _round(mean, COMPONENT_DECIMALS)
            axes = _round(axes, COMPONENT_DECIMALS)
            reference_step = step
        shares = explained(points, axes)
        kept = h.detach()[:sequences].double().cpu().index_select(1, steps.cpu())  # (S, K, H)
        paths = (kept - mean) @ axes.T  # (S, K, C)
        entries.append(
            {
                "reference_step": reference_step,
                "components": axes.tolist(),
                "mean": mean.tolist(),
                "explained": [round(v, 4) for v in shares.tolist()],
                "best_explained": round(float(best), 4),
                "paths": _rounded_paths(paths),
            }
        )
    return entries


def _rounded_paths(paths: Tensor) -> list:
    """Coordinates to about three significant digits of the largest one."""
    reach = paths.abs().max().item() if paths.numel() else 0.0
    decimals = 3 if not reach > 0 else max(0, 2 - math.floor(math.log10(reach)))
    return paths.round(decimals=decimals).tolist()
