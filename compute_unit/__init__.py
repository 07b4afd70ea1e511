"""Compute Units: the state view, py-evm execution of groups, Block-STM validation, Ray workers.

Importing the package selects eth-hash's C Keccak backend (safe-pysha3) for this process
unless ``ETH_HASH_BACKEND`` says otherwise: py-evm hashes per SHA3 opcode, per log bloom bit
and per trie node, and pycryptodome's per-call overhead makes each hash ~4.7x slower. The
backend is picked at the first hash, so this holds in the driver and in every Ray worker.
"""

import os

os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
