"""K-Persist pages: how the State Commitment's trie nodes are grouped and encoded on disk.

A trie is cut at every ``levels``-th nibble depth. Each cut-off piece (an *entry*: a subtree
root at some path, down to the next cut) lives in exactly one page; a page holds one or more
entries that hang below the same parent entry, in path order, and is kept near a size target
(4 KB): an oversized page splits into sibling pages, underfull siblings merge. Inside a page
nodes are encoded compactly: children in the same page are inline, without hashes; a child
beyond the cut is its 32-byte hash, and its entry records, per child page, a ``PageRef``:
version (block of the page's last change), sequence, first and last entry path, entry count,
and the CRC-32 of the child page's bytes. Node hashes cover the trie, not the references
between pages; the digests do: every page read back is checked against the digest its parent
recorded (the root page's against the block's root record, checksummed itself), so a page
with a garbled child reference is refused, not followed.

A page's key is ``version (8 bytes) ‖ depth (1 byte) ‖ sequence (5 bytes)``, big-endian
(litepaper: B + D + S = K): rewriting a page in a block writes a new key, so every earlier
version stays readable until pruned.
"""

from __future__ import annotations

import bisect
import zlib
from dataclasses import dataclass, field
from functools import cached_property

import rlp
from rlp.codec import encode_raw
from rlp.exceptions import DecodingError

from storage.keys import int_bytes
from storage.mpt import Branch, Extension, Leaf, Node, Raw, Stub, from_nibbles, to_nibbles

PAGE_KEY_BYTES = 14


class PageError(ValueError):
    """A page that cannot be decoded, or does not hash to what its parent says."""


@dataclass(frozen=True)
class PageRef:
    """What a parent entry records about one child page."""

    start: bytes  # nibble path of its first entry
    end: bytes  # nibble path of its last entry
    version: int
    seq: int
    count: int
    digest: int  # CRC-32 of the page's stored bytes

    def key(self, depth: int) -> bytes:
        return page_key(self.version, depth, self.seq)

    def raw(self) -> Raw:
        return [
            self.start,
            self.end,
            int_bytes(self.version),
            int_bytes(self.seq),
            int_bytes(self.count),
            int_bytes(self.digest),
        ]

    @classmethod
    def from_raw(cls, raw: Raw) -> PageRef:
        start, end, version, seq, count, digest = raw
        return cls(start, end, _int(version), _int(seq), _int(count), _int(digest))


def digest(data: bytes) -> int:
    """The checksum a ``PageRef`` records of its page's bytes."""
    return zlib.crc32(data)


def seal(data: bytes) -> bytes:
    """A record with its CRC-32 in front (the State Commitment's meta records)."""
    return zlib.crc32(data).to_bytes(4, "big") + data


def unseal(sealed: bytes, where: str) -> bytes:
    """The record ``seal`` made, or ``PageError`` naming ``where`` if it does not check."""
    if len(sealed) < 4 or zlib.crc32(sealed[4:]) != int.from_bytes(sealed[:4], "big"):
        raise PageError(f"{where}: checksum mismatch")
    return sealed[4:]


@dataclass(frozen=True)
class InlineTrie:
    """A trie small enough to live inside its anchoring leaf's entry (a small storage trie):
    every node inline, no page of its own."""

    root: Node

    def raw(self) -> Raw:
        return self._raw

    @cached_property
    def size(self) -> int:
        """Bytes the trie takes inline."""
        return len(encode_raw(self._raw))

    @cached_property
    def _raw(self) -> Raw:
        return [b"I", _EntryEncoder(NO_CUT).node(self.root, b"", top=True)]


NO_CUT = 1 << 30  # a cut depth no path reaches: every node inline


def page_key(version: int, depth: int, seq: int) -> bytes:
    return version.to_bytes(8, "big") + depth.to_bytes(1, "big") + seq.to_bytes(5, "big")


def describe_key(key: bytes) -> str:
    if len(key) != PAGE_KEY_BYTES:
        return key.hex()
    version, depth, seq = int.from_bytes(key[:8]), key[8], int.from_bytes(key[9:])
    return f"page(version={version}, depth={depth}, seq={seq})"


@dataclass
class Entry:
    """A subtree root at ``path`` (nibbles from the trie root) and the child pages below it."""

    path: bytes
    node: Node
    refs: list[PageRef] = field(default_factory=list)
    encoded: bytes | None = field(default=None, repr=False)  # cached ``encode_entry`` result

    def ref_for(self, path: bytes) -> PageRef | None:
        """The child page whose range holds ``path``."""
        starts = [ref.start for ref in self.refs]
        i = bisect.bisect_right(starts, path) - 1
        if i >= 0 and path <= self.refs[i].end:
            return self.refs[i]
        return None


@dataclass
class Page:
    depth: int
    entries: list[Entry]
    _by_path: dict[bytes, Entry] | None = field(default=None, repr=False)

    def entry(self, path: bytes) -> Entry | None:
        if self._by_path is None:
            self._by_path = {entry.path: entry for entry in self.entries}
        return self._by_path.get(path)


def cut_depth(path_len: int, levels: int) -> int:
    """The first nibble depth below an entry rooted at ``path_len`` that starts a new entry."""
    return (path_len // levels + 1) * levels


class _EntryEncoder:
    """One pass over an entry's in-page nodes: their page encoding (children in the page
    inline, children beyond the cut by hash) and the children that start entries below.

    A branch whose in-page subtree holds no leaf keeps its encoding on the node (nodes are
    immutable, and such a subtree has no leaf whose anchored storage could change), so a
    dirty entry re-encodes only its changed paths.
    """

    def __init__(self, cut: int) -> None:
        self.cut = cut
        self.below: list[tuple[bytes, Node]] = []
        self.leaves = 0

    def node(self, node: Node, path: bytes, top: bool = False) -> Raw:
        if not top and (
            isinstance(node, Stub) or (len(path) >= self.cut and len(node.encoded) >= 32)
        ):  # past the cut and by hash, or not loaded: the child starts an entry of its own
            # (written inline: the hottest line of a commit)
            self.below.append((path, node))
            return node.ref  # a 32-byte hash: in-page children are lists
        if isinstance(node, Leaf):
            self.leaves += 1
            sub = [] if node.sub is None else node.sub.raw()
            return [b"L", pack_nibbles(node.path), node.value, sub]
        if isinstance(node, Extension):
            return [b"E", pack_nibbles(node.path), self.node(node.child, path + node.path)]
        assert isinstance(node, Branch), f"cannot page a {type(node).__name__}"
        cached = node.paged
        if cached is not None and cached[0] == self.cut and cached[1] == path:
            self.below.extend(cached[3])
            return cached[2]
        leaves, first_below = self.leaves, len(self.below)
        children = [
            b"" if c is None else self.node(c, path + bytes([i]))
            for i, c in enumerate(node.children)
        ]
        raw = [b"B", node.value, children]
        if self.leaves == leaves:
            node.paged = (self.cut, path, raw, self.below[first_below:])
        return raw


def entry_parts(entry: Entry, levels: int) -> tuple[Raw, list[tuple[bytes, Node]]]:
    """The entry's node encoding, and (path, node) of each child starting an entry below."""
    encoder = _EntryEncoder(cut_depth(len(entry.path), levels))
    return encoder.node(entry.node, entry.path, top=True), encoder.below


def encode_entry(entry: Entry, levels: int, node_raw: Raw = None) -> bytes:
    """The entry's bytes in a page (cached on the entry: an unchanged entry keeps them);
    ``node_raw`` is its node's encoding if ``entry_parts`` gave it already."""
    if entry.encoded is None:
        if node_raw is None:
            node_raw = entry_parts(entry, levels)[0]
        refs = [ref.raw() for ref in entry.refs]
        entry.encoded = encode_raw([pack_nibbles(entry.path), node_raw, refs])
    return entry.encoded


def encode_page(depth: int, encoded_entries: list[bytes]) -> bytes:
    """A page from entries already encoded (``encode_entry``): RLP list, written by hand
    since the entries are RLP already."""
    payload = encode_raw(int_bytes(depth)) + b"".join(encoded_entries)
    return _list_prefix(len(payload)) + payload


def _list_prefix(length: int) -> bytes:
    if length < 56:
        return bytes([0xC0 + length])
    size = int_bytes(length)
    return bytes([0xF7 + len(size)]) + size


def decode_page(data: bytes, key: bytes, seq: int) -> Page:
    """A page's entries, their boundary children as stubs located in the entries' refs."""
    try:
        depth_raw, *entries_raw = rlp.decode(data)
        entries = []
        for packed, node_raw, refs_raw in entries_raw:
            path = unpack_nibbles(packed)
            entry = Entry(path, Leaf(b"", b""), [PageRef.from_raw(r) for r in refs_raw])
            entry.node = _decode_node(node_raw, path, entry, depth=_int(depth_raw) + 1)
            entry.node.origin = seq
            entries.append(entry)
        return Page(_int(depth_raw), entries)
    except (DecodingError, ValueError, TypeError, IndexError) as err:
        raise PageError(f"{describe_key(key)}: cannot decode: {err}") from err


def _decode_node(raw: Raw, path: bytes, entry: Entry, depth: int) -> Node:
    if isinstance(raw, bytes):
        if len(raw) != 32:
            raise ValueError(f"bad child reference at path {path.hex()}")
        ref = entry.ref_for(path)
        if ref is None:
            raise ValueError(f"no child page holds path {path.hex()}")
        return Stub(raw, (depth, ref, path), ref.seq)
    kind = raw[0]
    if kind == b"L":
        return Leaf(unpack_nibbles(raw[1]), raw[2], _decode_sub(raw[3], entry))
    if kind == b"E":
        ext_path = unpack_nibbles(raw[1])
        return Extension(ext_path, _decode_node(raw[2], path + ext_path, entry, depth))
    if kind == b"B" and len(raw[2]) == 16:
        children = tuple(
            None if c == b"" else _decode_node(c, path + bytes([i]), entry, depth)
            for i, c in enumerate(raw[2])
        )
        return Branch(children, raw[1])
    raise ValueError(f"unknown node kind {kind!r} at path {path.hex()}")


def pack_nibbles(nibbles: bytes) -> bytes:
    """Two nibbles a byte, after a byte saying whether the count is odd."""
    odd = len(nibbles) % 2
    return bytes([odd]) + from_nibbles(nibbles + b"\0" * odd)


def unpack_nibbles(data: bytes) -> bytes:
    if not data or data[0] > 1:
        raise ValueError(f"bad packed path {data.hex()}")
    nibbles = to_nibbles(data[1:])
    return nibbles[:-1] if data[0] else nibbles


def _decode_sub(raw: Raw, entry: Entry) -> PageRef | InlineTrie | None:
    if not raw:
        return None
    if raw[0] == b"I":
        return InlineTrie(_decode_node(raw[1], b"", entry, 0))
    return PageRef.from_raw(raw)


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")
