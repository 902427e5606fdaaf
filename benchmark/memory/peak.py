"""Measured peak memory of what runs in a block: process RSS growth (Linux ``/proc/self/status`` VmHWM,
reset through ``/proc/self/clear_refs``) on CPU; ``torch.cuda.max_memory_allocated`` growth on CUDA."""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(key: str) -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024.0


def peak_rss_mb() -> float | None:
    kb = _status_kb("VmHWM")
    return None if kb is None else kb / 1024.0


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with CLEAR_REFS.open("w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS, so the next RSS growth is not hidden by reuse."""
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Context manager: peak memory growth of what runs inside it (``growth_mb``), and how measured."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.growth_mb: float | None = None
        self.method = ""

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            self.method = "torch.cuda.max_memory_allocated growth"
        else:
            release_free_memory()
            exact = reset_peak_rss()
            self._base = current_rss_mb()
            self._old_peak = peak_rss_mb()
            self.method = "process RSS high-water mark growth" + ("" if exact else " (peak not resettable: lower bound)")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.growth_mb = (torch.cuda.max_memory_allocated() - self._base) / 2**20
            return
        peak = peak_rss_mb()
        if peak is None or self._base is None:
            self.method = "unavailable (no /proc/self/status)"
            return
        self.growth_mb = max(0.0, peak - self._base)
