"""Where the hidden state travels: each layer's h_t projected on two principal components.

A picture of the path through time is only comparable with the next one if both use the
same axes, so the axes are a *reference basis*: the two principal components of one
snapshot's hidden states (every probe sequence, every step, every unit), with that
snapshot's mean, fitted at `reference_step` and kept for the snapshots after it. They are
fitted again only when training has moved the states out of their plane: when the
reference axes explain less than REFIT_SHARE of the share of the variance they explained
when they were fitted (a test that needs no eigendecomposition per snapshot). A slider
over a run's snapshots then shows the same axes from one `reference_step` to the next;
a new fit keeps the signs of the old axes where it can, so that a picture does not flip
over when they are refitted.

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
REFIT_SHARE = 0.5  # refit when the axes explain less than this share of what they did
PATH_SEQUENCES = 4  # probe sequences whose paths a snapshot keeps
COMPONENT_DECIMALS = 4  # of the stored components and mean


def _round(tensor: Tensor, decimals: int) -> Tensor:
    return tensor.double().round(decimals=decimals)


def covariance(points: Tensor) -> tuple[Tensor, Tensor]:
    """The mean (H,) and the covariance (H, H) of points: (N, H), in float64 (the
    product itself in the points' precision: it is most of the cost)."""
    mean = points.mean(0)
    centred = points - mean
    return mean.double(), (centred.T @ centred).double() / points.shape[0]


def principal_axes(cov: Tensor) -> Tensor:
    """The top COMPONENTS principal axes of a covariance (H, H), as rows (C, H); zero
    rows where H < C."""
    _, vectors = torch.linalg.eigh(cov)  # ascending
    axes = vectors.flip(1)[:, :COMPONENTS].T  # (C, H)
    if axes.shape[0] < COMPONENTS:
        axes = torch.cat([axes, axes.new_zeros(COMPONENTS - axes.shape[0], axes.shape[1])])
    return axes


def explained(cov: Tensor, axes: Tensor) -> Tensor:
    """The share of the variance along each of axes: (C, H) (unit rows), (C,)."""
    total = cov.trace()
    if not total > 0:
        return cov.new_zeros(axes.shape[0])
    return ((axes @ cov) * axes).sum(1) / total


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
        h = h.detach().cpu()
        points = h.reshape(-1, h.shape[-1])  # (B·T, H)
        if not bool(torch.isfinite(points).all()):
            entries.append(old)
            continue
        own_mean, cov = covariance(points)
        old_axes = torch.tensor(old["components"], dtype=torch.float64) if old else None
        shares = explained(cov, old_axes) if old_axes is not None else None
        if shares is not None and shares.sum() >= REFIT_SHARE * sum(old["reference_explained"]):
            mean = torch.tensor(old["mean"], dtype=torch.float64)
            axes, reference_step = old_axes, old["reference_step"]
            reference_shares = old["reference_explained"]
        else:
            axes = _round(_aligned(principal_axes(cov), old_axes), COMPONENT_DECIMALS)
            mean, reference_step = _round(own_mean, COMPONENT_DECIMALS), step
            shares = explained(cov, axes)
            reference_shares = [round(v, 4) for v in shares.tolist()]
        kept = h[:sequences].index_select(1, steps.cpu()).double()  # (S, K, H)
        paths = (kept - mean) @ axes.T  # (S, K, C)
        entries.append(
            {
                "step": step,
                "reference_step": reference_step,
                "components": axes.tolist(),
                "mean": mean.tolist(),
                "explained": [round(v, 4) for v in shares.tolist()],
                "reference_explained": reference_shares,
                "paths": _rounded_paths(paths),
            }
        )
    return entries


def _rounded_paths(paths: Tensor) -> list:
    """Coordinates to about three significant digits of the largest one."""
    reach = paths.abs().max().item() if paths.numel() else 0.0
    decimals = 3 if not reach > 0 else max(0, 2 - math.floor(math.log10(reach)))
    return paths.round(decimals=decimals).tolist()
