"""Compute Units: the state view, py-evm execution of groups, Block-STM validation, Ray workers.

Importing the package loads py-evm's KZG trusted setup once per process, the driver and every
Ray worker alike (so the sequential oracle runs with the same settings): py-evm's
point-evaluation precompile (EIP-4844) reloads it on every call, 1.3 s each; clients load it
once at start. (The Keccak backend is chosen in ``storage/__init__.py``.)
"""

from functools import cache

import eth.precompiles.point_evaluation as _point_evaluation

import storage  # noqa: F401  (selects the Keccak backend before anything hashes)

_point_evaluation.load_trusted_setup = cache(_point_evaluation.load_trusted_setup)
