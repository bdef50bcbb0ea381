"""The devices a run may ask for, as this machine shows them without PyTorch.

The dashboard's server offers these in its settings form and never imports PyTorch;
the training workers resolve the choice with it (rnnlab.train.resolve_device), and a run
asking for a device their PyTorch cannot use fails with a message saying so.
rnnlab.train.available_devices asks PyTorch itself, for notebooks and the CLI.
"""

from __future__ import annotations

import glob
import os
import platform
import sys

NVIDIA_DRIVER = "/proc/driver/nvidia/version"  # present while the NVIDIA driver is loaded
NVIDIA_DEVICES = "/dev/nvidia[0-9]*"  # one node per GPU (a container is given these)


def available_devices() -> list[str]:
    """auto and cpu, then cuda where an NVIDIA GPU is visible and mps on Apple silicon."""
    devices = ["auto", "cpu"]
    if os.path.exists(NVIDIA_DRIVER) or glob.glob(NVIDIA_DEVICES):
        devices.append("cuda")
    if sys.platform == "darwin" and platform.machine() == "arm64":
        devices.append("mps")
    return devices
