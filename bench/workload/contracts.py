"""Compiles the workload's Vyper contracts from source (cached) and encodes calls to them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import eth_abi
import vyper
from eth_hash.auto import keccak

SOURCES = Path(__file__).parent / "contracts"
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "contracts"


@dataclass(frozen=True)
class CompiledContract:
    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes

    def _inputs(self, entry: dict[str, Any]) -> list[str]:
        return [arg["type"] for arg in entry["inputs"]]

    def deploy_data(self, *args: Any) -> bytes:
        """Init code: bytecode followed by the ABI-encoded constructor arguments."""
        ctor = next((e for e in self.abi if e["type"] == "constructor"), {"inputs": []})
        return self.bytecode + eth_abi.encode(self._inputs(ctor), list(args))

    def calldata(self, function: str, *args: Any) -> bytes:
        """Selector and ABI-encoded arguments of a call to ``function``."""
        entry = next(e for e in self.abi if e.get("name") == function and e["type"] == "function")
        types = self._inputs(entry)
        selector = keccak(f"{function}({','.join(types)})".encode())[:4]
        return selector + eth_abi.encode(types, list(args))


@cache
def compiled(name: str) -> CompiledContract:
    """``contracts/<name>.vy`` compiled with the installed Vyper, cached by source hash."""
    return compile_source(name, (SOURCES / f"{name}.vy").read_text())


def compile_source(name: str, source: str) -> CompiledContract:
    """Vyper source compiled (cached in ``.cache/contracts`` by compiler version and source)."""
    digest = hashlib.sha256(f"{vyper.__version__}\n{source}".encode()).hexdigest()[:16]
    cached = CACHE / f"{name}-{digest}.json"
    if cached.exists():
        out = json.loads(cached.read_text())
    else:
        out = vyper.compile_code(source, output_formats=["bytecode", "abi"])
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(json.dumps(out))
        tmp.replace(cached)
    return CompiledContract(name, tuple(out["abi"]), bytes.fromhex(out["bytecode"][2:]))
