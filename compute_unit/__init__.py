"""Compute Units: the state view, py-evm execution of groups, Block-STM validation, Ray workers.

Importing the package sets up py-evm for this process, the driver and every Ray worker alike
(so the sequential oracle runs with the same settings):

- eth-hash's C Keccak backend (safe-pysha3) unless ``ETH_HASH_BACKEND`` says otherwise:
  py-evm hashes per SHA3 opcode, per log bloom bit and per trie node, and pycryptodome's
  per-call overhead makes each hash ~4.7x slower. The backend is picked at the first hash.
- the KZG trusted setup loaded once per process: py-evm's point-evaluation precompile
  (EIP-4844) reloads it on every call, 1.3 s each; clients load it once at start.
"""

import os
from functools import cache

import eth.precompiles.point_evaluation as _point_evaluation

os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
_point_evaluation.load_trusted_setup = cache(_point_evaluation.load_trusted_setup)
