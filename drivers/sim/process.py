"""Child processes of the simulators: they die with their parent and stop politely."""

from __future__ import annotations

import ctypes
import signal
import subprocess
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def death_signal_preexec() -> Callable[[], None]:
    """A preexec function: the kernel SIGTERMs the child when its parent thread ends.

    That covers a parent killed outright (SIGKILL), so no orphan keeps a port. The
    signal follows the *thread* that forked: start children from a long-lived thread
    (the main thread), not a pool's worker. libc is looked up here, in the parent, so
    the child makes a single system call before exec. A change of credentials clears
    the signal: set it after any setuid.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_death_signal


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`; always reaped."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
