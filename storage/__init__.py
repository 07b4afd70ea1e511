"""State keys, State Storage, State Commitment and the committer.

Importing the package selects eth-hash's C Keccak backend (safe-pysha3) for this process
unless ``ETH_HASH_BACKEND`` says otherwise: tries hash every node, py-evm every SHA3 opcode
and log bloom bit, and pycryptodome's per-call overhead makes each hash ~4.7x slower. The
backend is picked at the first hash; every entry point imports this package before hashing.
"""

import os

os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
