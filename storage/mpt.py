"""Ethereum's hexary Merkle Patricia trie in memory: nodes, updates, hashing, proofs.

The State Commitment (``storage/sc.py``) keeps its tries as these nodes and persists them in
pages (``storage/pages.py``). Nodes are immutable: an update builds new nodes along the
changed path and shares the rest, so the trie of an earlier block stays intact while the next
one is built. Each node computes its RLP and reference (the node itself when its encoding is
under 32 bytes, else its Keccak hash) once, on demand, so a block re-hashes only what it
changed. A ``Stub`` stands for a subtree not loaded yet: it knows its reference (enough to
hash its parent) and where to load it from; the trie asks its loader when it must descend.

Roots are the same as py-trie's ``HexaryTrie`` for the same keys and values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import rlp
from eth.constants import BLANK_ROOT_HASH
from rusty_rlp import encode_raw  # (pyrlp's backend without its wrapper: bytes and lists only)
from sha3 import keccak_256  # (eth-hash's backend, called directly: a block hashes ~20,000 nodes)

Raw = Any  # an RLP structure: bytes or a list of them


def keccak(data: bytes) -> bytes:
    """Keccak-256 of ``data``, by eth-hash's backend called directly (eth-hash's wrapper
    cost several times the hash: a block also hashes ~10,000 addresses, slots, records)."""
    return keccak_256(data).digest()


_TO_HEX = bytes.maketrans(bytes(range(16)), b"0123456789abcdef")
_FROM_HEX = bytes.maketrans(b"0123456789abcdef", bytes(range(16)))


def to_nibbles(key: bytes) -> bytes:
    """One byte (0-15) per nibble, high nibble first (via hex: C speed)."""
    return key.hex().encode().translate(_FROM_HEX)


def from_nibbles(nibbles: bytes) -> bytes:
    """Pack an even number of nibbles two a byte."""
    return bytes.fromhex(nibbles.translate(_TO_HEX).decode())


def hp_encode(nibbles: bytes, leaf: bool) -> bytes:
    """Hex-prefix encoding of a node's path (Yellow Paper, appendix C)."""
    flag = 2 if leaf else 0
    if len(nibbles) % 2:
        return from_nibbles(bytes([flag + 1]) + nibbles)
    return from_nibbles(bytes([flag, 0]) + nibbles)


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Node:
    """A trie node; ``raw`` is its RLP structure with children by reference."""

    __slots__ = ("_encoded", "_ref", "origin")

    def __init__(self) -> None:
        self._encoded: bytes | None = None
        self._ref: Raw = None
        self.origin: int | None = None  # sequence of the page it is stored in, if stored

    def raw(self) -> Raw:
        raise NotImplementedError

    @property
    def encoded(self) -> bytes:
        if self._encoded is None:
            self._encoded = encode_raw(self.raw())
        return self._encoded

    @property
    def ref(self) -> Raw:
        """How a parent refers to this node: inline under 32 bytes, else by hash."""
        if self._ref is None:
            encoded = self._encoded  # (read directly: this runs for every node a block hashes)
            if encoded is None:
                encoded = self._encoded = encode_raw(self.raw())
            self._ref = self.raw() if len(encoded) < 32 else keccak_256(encoded).digest()
        return self._ref

    @property
    def hash(self) -> bytes:
        return keccak_256(self.encoded).digest()


class Leaf(Node):
    """``sub`` is what the leaf's value anchors below it (an account's storage trie pages).

    A leaf read from a page that keeps only its hash (``hashed``) has no value until one is
    asked for: ``fetch(leaf)`` gives it then (the State Commitment reads it from State Storage
    by ``key``, the leaf's whole key, and checks it against the hash). Hashing the trie needs
    only the hash, so a block fetches the values of the leaves it changes or moves alone.
    """

    __slots__ = ("path", "_value", "sub", "key", "fetch")

    def __init__(self, path: bytes, value: bytes | None, sub: Any = None) -> None:
        super().__init__()
        self.path, self._value, self.sub = path, value, sub
        self.key: bytes | None = None
        self.fetch: Callable[[Leaf], bytes] | None = None

    @classmethod
    def hashed(
        cls, path: bytes, ref: bytes, key: bytes, fetch: Callable[[Leaf], bytes], sub: Any
    ) -> Leaf:
        """A leaf known by its hash ``ref`` under ``key``, its value got by ``fetch``."""
        leaf = cls(path, None, sub)
        leaf._ref, leaf.key, leaf.fetch = ref, key, fetch
        return leaf

    @property
    def fetched(self) -> bool:
        """Whether the leaf has its value (or is still to ``fetch`` it)."""
        return self._value is not None

    def supply(self, value: bytes) -> None:
        """Give the leaf the value ``fetch`` would (fetched with others', in one batch)."""
        self._value = value

    @property
    def value(self) -> bytes:
        if self._value is None:
            assert self.fetch is not None, "a leaf without a value or a way to fetch it"
            self._value = self.fetch(self)
        return self._value

    def raw(self) -> Raw:
        return [hp_encode(self.path, True), self.value]


class Extension(Node):
    __slots__ = ("path", "child")

    def __init__(self, path: bytes, child: Node) -> None:
        super().__init__()
        self.path, self.child = path, child

    def raw(self) -> Raw:
        return [hp_encode(self.path, False), self.child.ref]


class Branch(Node):
    """``paged`` caches the branch's page encoding (``storage/pages.py``), if cacheable.

    A branch an update made from another (``successor``) knows it as ``base`` and the
    children it changed (``changed``), so its page encoding is the base's with those
    children redone; the pager lets go of ``base`` once it has used it.
    """

    __slots__ = ("children", "value", "paged", "base", "changed")

    def __init__(self, children: tuple[Node | None, ...], value: bytes = b"") -> None:
        super().__init__()
        self.children, self.value = children, value
        self.paged: Any = None
        self.base: Branch | None = None
        self.changed: tuple[int, ...] = ()

    def successor(self, children: tuple[Node | None, ...], changed: Sequence[int]) -> Branch:
        """The branch with ``children`` instead, which differ from this one's at ``changed``
        (a base never paged that itself has a base is skipped: that one's encoding serves)."""
        branch = Branch(children, self.value)
        if self.paged is None and self.base is not None:
            branch.base, branch.changed = self.base, (*self.changed, *changed)
        else:
            branch.base, branch.changed = self, tuple(changed)
        return branch

    def raw(self) -> Raw:
        # (a child's reference read directly once computed: the property costs as much as
        # the rest of the list, over the ~5,000 branches a block hashes)
        return [
            b"" if c is None else (c._ref if c._ref is not None else c.ref) for c in self.children
        ] + [self.value]


class Stub(Node):
    """A subtree not loaded: its reference and where it lives (``locator``; ``origin``, the
    sequence of the page holding it)."""

    __slots__ = ("stub_ref", "locator")

    def __init__(self, ref: bytes, locator: Any, origin: int | None = None) -> None:
        super().__init__()
        self.stub_ref, self.locator = ref, locator
        self._ref = ref
        self.origin = origin

    def raw(self) -> Raw:
        raise RuntimeError("a stub has no body until it is loaded")


EMPTY_CHILDREN: tuple[None, ...] = (None,) * 16
Loader = Callable[[Stub], Node]


def _no_loader(stub: Stub) -> Node:
    raise RuntimeError(f"no loader for subtree {stub.stub_ref.hex()}")


class Trie:
    """A mutable handle on immutable nodes: ``root`` changes, old roots stay valid."""

    def __init__(self, root: Node | None = None, loader: Loader = _no_loader) -> None:
        self.root = root
        self.loader = loader

    def _load(self, node: Node | None) -> Node | None:
        return self.loader(node) if isinstance(node, Stub) else node

    # -- reads ------------------------------------------------------------------------------
    @property
    def root_hash(self) -> bytes:
        if self.root is None:
            return BLANK_ROOT_HASH
        ref = self.root.ref  # (a hash once computed or read, an unloaded root's too: a hashed
        # leaf has no value to encode, and a stub is not loaded for it)
        if isinstance(ref, bytes):
            return ref
        return keccak_256(self._load(self.root).encoded).digest()

    def get(self, key: bytes) -> bytes | None:
        node = self._walk(to_nibbles(key), None)
        return None if node is None else node.value or None

    def leaf(self, key: bytes) -> Leaf | None:
        """The leaf holding ``key`` (with its ``sub``), if the key ends in a leaf."""
        node = self._walk(to_nibbles(key), None)
        return node if isinstance(node, Leaf) else None

    def proof(self, key: bytes) -> tuple[Raw, ...]:
        """Nodes on the path to ``key`` (RLP structures), as py-trie's ``get_proof`` gives."""
        nodes: list[Raw] = []
        self._walk(to_nibbles(key), nodes)
        return tuple(nodes)

    def _walk(self, path: bytes, proof: list[Raw] | None) -> Leaf | Branch | None:
        """The node where ``path`` ends (a leaf, or a branch holding a value), if any."""
        node = self._load(self.root)
        first = True
        while node is not None:
            if proof is not None and (first or len(node.encoded) >= 32):
                proof.append(node.raw())
            first = False
            if isinstance(node, Leaf):
                return node if node.path == path else None
            if isinstance(node, Extension):
                if path[: len(node.path)] != node.path:
                    return None
                path = path[len(node.path) :]
                node = self._load(node.child)
            else:
                assert isinstance(node, Branch)
                if not path:
                    return node if node.value else None
                node = self._load(node.children[path[0]])
                path = path[1:]
        return None

    # -- writes -----------------------------------------------------------------------------
    @classmethod
    def build(cls, items: Iterable[tuple[bytes, bytes]], loader: Loader = _no_loader) -> Trie:
        """A trie of ``(key, value)`` items (distinct keys of one length, values non-empty),
        built bottom up in one pass: each node once, as a block's many puts would not."""
        ordered = sorted((to_nibbles(key), value) for key, value in items)
        return cls(_build(ordered, 0) if ordered else None, loader)

    def put_many(self, items: Iterable[tuple[bytes, bytes, Any]]) -> None:
        """``put`` of each ``(key, value, sub)`` (distinct keys of one length), together: a
        branch on the way to several keys is rebuilt once, not once per key."""
        ordered = sorted(((to_nibbles(key), value, sub) for key, value, sub in items), key=_path)
        if ordered:
            deletes = not all(value for _, value, _ in ordered)
            self.root = self._put_many(self.root, ordered, 0, deletes)

    def _put_many(
        self, node: Node | None, items: list[_Change], depth: int, deletes: bool
    ) -> Node | None:
        if len(items) > 1:
            node = self._load(node)
            if isinstance(node, Branch):  # (keys of one length: none ends at a branch)
                children = list(node.children)
                changed = []
                for index, group in _by_nibble(items, depth):
                    children[index] = self._put_many(children[index], group, depth + 1, deletes)
                    changed.append(index)
                if not deletes:  # (it keeps every child it had: still a branch)
                    return node.successor(tuple(children), changed)
                return self._normalize(tuple(children), node.value)
        for path, value, sub in items:  # one key, or a leaf or extension to split: in turn
            rest = path[depth:]
            if value:
                node = self._put(node, rest, Leaf(rest, value, sub))
            else:
                node = self._delete(node, rest)
        return node

    def put(self, key: bytes, value: bytes, sub: Any = None) -> None:
        """Set ``key`` to ``value`` (``sub`` travels with its leaf); empty value deletes."""
        path = to_nibbles(key)
        if value:
            self.root = self._put(self.root, path, Leaf(path, value, sub))
        else:
            self.root = self._delete(self.root, path)

    def _put(self, node: Node | None, path: bytes, new: Leaf) -> Node:
        node = self._load(node)
        if node is None:
            return Leaf(path, new.value, new.sub)
        if isinstance(node, Leaf):
            if node.path == path:
                return Leaf(path, new.value, new.sub)
            return self._fork(node.path, node, path, new)
        if isinstance(node, Extension):
            common = _common_prefix(node.path, path)
            if common == len(node.path):
                return Extension(node.path, self._put(node.child, path[common:], new))
            return self._fork(node.path, node, path, new)
        assert isinstance(node, Branch)
        if not path:
            if new.sub is not None:
                raise ValueError("a value held in a branch cannot anchor a subtree")
            return Branch(node.children, new.value)
        children = list(node.children)
        children[path[0]] = self._put(children[path[0]], path[1:], new)
        return node.successor(tuple(children), path[:1])

    def _fork(self, old_path: bytes, old: Node, new_path: bytes, new: Leaf) -> Node:
        """A branch where ``old`` (a leaf or extension) and a new leaf part ways."""
        common = _common_prefix(old_path, new_path)
        children: list[Node | None] = [None] * 16
        branch_value = b""
        old_rest = old_path[common:]
        if not old_rest:
            assert isinstance(old, Leaf)
            branch_value = old.value
        elif isinstance(old, Leaf):
            children[old_rest[0]] = Leaf(old_rest[1:], old.value, old.sub)
        else:
            assert isinstance(old, Extension)
            children[old_rest[0]] = (
                Extension(old_rest[1:], old.child) if len(old_rest) > 1 else old.child
            )
        new_rest = new_path[common:]
        if not new_rest:
            branch_value = new.value
        else:
            children[new_rest[0]] = Leaf(new_rest[1:], new.value, new.sub)
        branch = Branch(tuple(children), branch_value)
        return Extension(old_path[:common], branch) if common else branch

    def _delete(self, node: Node | None, path: bytes) -> Node | None:
        node = self._load(node)
        if node is None:
            return None
        if isinstance(node, Leaf):
            return None if node.path == path else node
        if isinstance(node, Extension):
            if path[: len(node.path)] != node.path:
                return node
            child = self._delete(node.child, path[len(node.path) :])
            return self._prepend(node.path, child)
        assert isinstance(node, Branch)
        if not path:
            if not node.value:
                return node
            return self._normalize(node.children, b"")
        child = node.children[path[0]]
        new_child = self._delete(child, path[1:])
        if new_child is child:
            return node
        children = list(node.children)
        children[path[0]] = new_child
        return self._normalize(tuple(children), node.value)

    def _normalize(self, children: tuple[Node | None, ...], value: bytes) -> Node | None:
        """A branch left with fewer than two entries collapses into its one remaining entry."""
        present = [i for i, c in enumerate(children) if c is not None]
        if len(present) + (1 if value else 0) >= 2:
            return Branch(children, value)
        if value:
            return Leaf(b"", value)
        if not present:
            return None
        index = present[0]
        return self._prepend(bytes([index]), children[index])

    def _prepend(self, prefix: bytes, child: Node | None) -> Node | None:
        """``prefix`` followed by ``child``, merged with it when it is a leaf or extension."""
        child = self._load(child)
        if child is None:
            return None
        if isinstance(child, Leaf):
            return Leaf(prefix + child.path, child.value, child.sub)
        if isinstance(child, Extension):
            return Extension(prefix + child.path, child.child)
        return Extension(prefix, child)


_Change = tuple[bytes, bytes, Any]  # (nibble path, value or b"" to delete, sub)


def _path(change: _Change) -> bytes:
    return change[0]


def _build(items: list[tuple[bytes, bytes]], depth: int) -> Node:
    """The subtree of sorted ``(nibble path, value)`` items sharing ``depth`` nibbles."""
    first = items[0][0]
    if len(items) == 1:
        return Leaf(first[depth:], items[0][1])
    common = _common_prefix(first[depth:], items[-1][0][depth:])  # (sorted: all share it)
    if common:
        return Extension(first[depth : depth + common], _build(items, depth + common))
    children: list[Node | None] = [None] * 16
    for index, group in _by_nibble(items, depth):
        children[index] = _build(group, depth + 1)
    return Branch(tuple(children))


def _by_nibble(items: list, depth: int) -> Iterator[tuple[int, list]]:
    """Sorted items (nibble path first) in runs by their nibble at ``depth``."""
    start = 0
    for end in range(1, len(items) + 1):
        if end == len(items) or items[end][0][depth] != items[start][0][depth]:
            yield items[start][0][depth], items[start:end]
            start = end


def ordered_root(items: Sequence[bytes]) -> bytes:
    """The root of an Ethereum list trie (transactions, receipts, withdrawals): item ``i``
    under key ``rlp(i)``; the same root as py-evm's ``make_trie_root_and_nodes``, without
    its node store (a block's builder needs only the root)."""
    trie = Trie()
    for index, item in enumerate(items):
        trie.put(rlp.encode(index), item)
    return trie.root_hash
