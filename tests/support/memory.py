"""What a server holds in memory, seen from outside: the growth of its peak RSS."""

from __future__ import annotations

from .procs import vm_kib

MIB = 1024 * 1024


class PeakRSS:
    """The growth of a process's peak resident memory (VmHWM) since this was made."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base = vm_kib(pid, "VmHWM") * 1024

    def growth(self) -> int:
        """Bytes the peak grew by so far."""
        return vm_kib(self.pid, "VmHWM") * 1024 - self.base

    def reset(self) -> PeakRSS:
        """Start the peak afresh at the current RSS (Linux: /proc/PID/clear_refs, value 5),
        so that ``growth()`` counts from now and not from a peak an earlier test left."""
        with open(f"/proc/{self.pid}/clear_refs", "w") as fh:
            fh.write("5")
        self.base = vm_kib(self.pid, "VmHWM") * 1024
        return self
