"""How many CPUs this process may use: the container's or the affinity mask's share."""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one, else cpu_count).

    Not ``os.cpu_count()``: in a container or a pinned worker that counts the host's CPUs, and
    as many busy threads or processes as that thrash on the few CPUs actually given.
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
