"""What compute devices this machine offers, described for a user."""

from __future__ import annotations

import torch


def cuda_device_name() -> str | None:
    """'CUDA: <name>' when a CUDA device is usable, else None."""
    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    return None
