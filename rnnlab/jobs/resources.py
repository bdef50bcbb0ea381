"""What this machine (or container) gives the server: memory and processors.

A container's limits are not the machine's: Community Cloud gives an app 690 MB to
2.7 GB of a larger machine, and a process that goes past its memory limit is killed by
the kernel. The limits come from the control groups the process is in (cgroup v2
`memory.max` and `cpu.max`, or v1 `memory.limit_in_bytes`, `hierarchical_memory_limit`
and the CFS quota), else from the machine itself.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
UNLIMITED = 1 << 60  # v1 writes 9223372036854771712 for "no limit"


@dataclass(frozen=True)
class Resources:
    """Memory the processes may use together, and processors they may keep busy."""

    memory_bytes: int
    memory_source: str  # where memory_bytes came from: "cgroup v2", "cgroup v1", "machine"
    cpus: float

    def describe(self) -> str:
        return f"{self.memory_bytes / 2**20:.0f} MiB ({self.memory_source}), {self.cpus:g} CPUs"


def detect(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> Resources:
    """This process's limits; `root` and `proc_cgroup` are for tests."""
    groups = _groups(proc_cgroup)
    memory, source = _memory_limit(root, groups)
    return Resources(memory_bytes=memory, memory_source=source, cpus=_cpus(root, groups))


def _groups(proc_cgroup: Path) -> dict[str, str]:
    """controller -> this process's group path ("" for the v2 unified hierarchy)."""
    groups = {}
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return groups
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            groups[controller] = path
    return groups


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _ancestors(base: Path, group: str) -> list[Path]:
    """The group's directory and every one above it up to `base`: a parent's limit binds."""
    parts = [part for part in group.split("/") if part]
    return [base.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _memory_limit(root: Path, groups: dict[str, str]) -> tuple[int, str]:
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limits = []
    if "" in groups and (root / "cgroup.controllers").exists():  # v2
        for directory in _ancestors(root, groups[""]):
            value = _read(directory / "memory.max")
            if value and value != "max":
                limits.append(int(value))
        if limits:
            return min(min(limits), machine), "cgroup v2"
    if "memory" in groups:  # v1: the kernel folds the ancestors' limits in for us
        directory = root / "memory" / groups["memory"].lstrip("/")
        for line in (_read(directory / "memory.stat") or "").splitlines():
            key, _, value = line.partition(" ")
            if key == "hierarchical_memory_limit" and int(value) < UNLIMITED:
                limits.append(int(value))
        value = _read(directory / "memory.limit_in_bytes")
        if value and int(value) < UNLIMITED:
            limits.append(int(value))
        if limits:
            return min(min(limits), machine), "cgroup v1"
    return machine, "machine"


def _cpus(root: Path, groups: dict[str, str]) -> float:
    try:
        cpus = float(len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cpus = float(os.cpu_count() or 1)
    quotas = []
    if "" in groups:  # v2: "max 100000" or "200000 100000"
        for directory in _ancestors(root, groups[""]):
            quota, _, period = (_read(directory / "cpu.max") or "max").partition(" ")
            if quota != "max" and period:
                quotas.append(int(quota) / int(period))
    if "cpu" in groups:  # v1, mounted as cpu or as cpu,cpuacct
        for mount in ("cpu", "cpu,cpuacct"):
            directory = root / mount / groups["cpu"].lstrip("/")
            quota = _read(directory / "cpu.cfs_quota_us")
            period = _read(directory / "cpu.cfs_period_us")
            if quota and period and int(quota) > 0:
                quotas.append(int(quota) / int(period))
                break
    return min([cpus, *quotas])


def whole_cpus(resources: Resources) -> int:
    """Processors worth a training worker each: a fraction of one still gets one."""
    return max(1, math.ceil(resources.cpus - 0.25))
