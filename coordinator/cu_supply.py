"""Where Compute Units come from: names them and asks the cluster's factory for them.

A factory (``coordinator.coordinator.RayCuFactory`` on Ray, an in-process one in tests) returns
a CU, or None when the cluster cannot place one yet. The basic pool's first CUs are waited for
(a new cluster's worker nodes may still be starting); later requests never wait.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

CuFactory = Callable[[str, int], Any]  # (name, cores) -> a Compute Unit, or None: no room


class CuSupply:
    def __init__(self, factory: CuFactory, cores: int) -> None:
        self.factory = factory
        self.cores = cores
        self._names = (f"cu-{n}" for n in itertools.count())
        self._asking: str | None = None  # the name asked for and not handed out yet

    def new(self) -> Any:
        """A CU now, or None (the cluster has no room yet, or it is still being made: the
        same name is asked for again, so CUs are numbered as they come)."""
        name = self._asking or next(self._names)
        cu = self.factory(name, self.cores)
        self._asking = name if cu is None else None
        return cu

    def wait_for(self, timeout: float) -> Any:
        """A CU, waiting up to ``timeout`` seconds for the cluster to place one."""
        deadline = time.monotonic() + timeout
        while (cu := self.new()) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster placed no basic Compute Unit in {timeout} s")
            time.sleep(1.0)
        return cu
