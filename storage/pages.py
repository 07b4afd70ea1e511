"""K-Persist pages: how the State Commitment's trie nodes are grouped and encoded on disk.

A trie is cut at every ``levels``-th nibble depth. Each cut-off piece (an *entry*: a subtree
root at some path, down to the next cut) lives in exactly one page; a page holds one or more
entries that hang below the same parent entry, in path order, and is kept near a size target
(4 KB): an oversized page splits into sibling pages, underfull siblings merge. Inside a page
nodes are encoded compactly: children in the same page are inline, without hashes; a leaf of
a trie whose values live elsewhere (the account trie, whose records State Storage holds) is
its path and 32-byte hash alone (``H``), its value fetched only when asked for; a child
beyond the cut is its 32-byte hash, and its entry records, per child page, a ``PageRef``:
version (block of the page's last change), sequence, first and last entry path, entry count,
the CRC-32 of the child page's bytes, and which pack holds them if one does. Node hashes
cover the trie, not the references between pages; the digests do: every page read back is
checked against the digest its parent recorded (the root page's against the block's root
record, checksummed itself), so a page with a garbled child reference is refused, not
followed.

A page's key is ``version (8 bytes) ‖ depth (1 byte) ‖ sequence (5 bytes)``, big-endian
(litepaper: B + D + S = K): rewriting a page in a block writes a new key, so every earlier
version stays readable until pruned.

A new version is stored either full or as a *delta page* (LETUS's delta pages): the entries
that changed since the page's previous version, each as a structural diff of its nodes (a
node the previous version has unchanged at the same place is ``SAME``, one byte, as is a
leaf's or extension's path kept; a branch lists only the children it changed, after a bitmap
of them, as the issue's "changed child hashes plus a bitmap"; a hashed leaf whose hash alone
changed is that hash; a child reference kept is its index in the previous entry's
references), with the previous version's block and digest. A page is read as its full base
with its deltas applied in order, each stored version checked against its digest; the writer
stores a full page again once the deltas since the base would weigh ``delta_ratio`` times it
(or after ``max_deltas`` of them), so a read touches a bounded chain. A block's delta pages
(a few hundred bytes each) are not stored one record each but packed, in the order written,
into *packs* of about the page target under ``version ‖ 0xFF ‖ pack number`` keys, so a
block writes hundreds of records, not thousands; a reference to a packed version says which
pack holds it.
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import rlp
from rlp.exceptions import DecodingError

from storage.keys import int_bytes, list_prefix
from storage.mpt import (
    Branch,
    Extension,
    Leaf,
    Node,
    Raw,
    Stub,
    encode_raw,
    from_nibbles,
    to_nibbles,
)

PAGE_KEY_BYTES = 14
PACK_DEPTH = 0xFF  # the depth byte of a pack's key (pages are at most 64 deep)
LEAF_KINDS = (b"L", b"H")  # a leaf with its value; a leaf by its hash (the value is elsewhere)
SAME = b"S"  # in a delta page: the node the previous version has here, unchanged
# (never a node's encoding: those are b"", a 32-byte hash or a list)
BRANCH_DIFF = b"b"  # in a delta page: a branch's changed children, by a bitmap
HASH_ONLY = b"H"  # in a delta page, before 32 bytes: a hashed leaf's new hash, all else kept


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
    pack: int = 0  # 0: stored under its own key; n: in pack n - 1 of its block

    def key(self, depth: int) -> bytes:
        """The version's own key (what names it, and caches it)."""
        return page_key(self.version, depth, self.seq)

    def stored_key(self, depth: int) -> bytes:
        """The key of the record that holds the version's bytes."""
        return pack_key(self.version, self.pack - 1) if self.pack else self.key(depth)

    def raw(self) -> Raw:
        return [
            self.start,
            self.end,
            int_bytes(self.version),
            int_bytes(self.seq),
            int_bytes(self.count),
            int_bytes(self.digest),
            *([int_bytes(self.pack)] if self.pack else []),
        ]

    @classmethod
    def from_raw(cls, raw: Raw) -> PageRef:
        start, end, version, seq, count, digest, *pack = raw
        if len(pack) > 1:
            raise ValueError(f"a page reference of {len(raw)} fields")
        return cls(
            start, end, _int(version), _int(seq), _int(count), _int(digest), _int(b"".join(pack))
        )


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


def unpaged_size(root: Node) -> int:
    """Bytes a trie whose nodes are all loaded would take as one entry, every node inline
    (how small a storage trie is: one this small is not paged, see ``storage/sc.py``):
    the length of an entry's encoding with no cut, counted without building it (a block
    asks it of a thousand small storage tries)."""
    if isinstance(root, Stub):
        return _rlp_size(32)  # (by hash, as the encoder gives a child not loaded)
    if isinstance(root, Leaf):
        sub = 1 if root.sub is None else len(encode_raw(root.sub.raw()))
        return _rlp_size(1 + _packed_size(len(root.path)) + _bytes_size(root.value) + sub)
    if isinstance(root, Extension):
        return _rlp_size(1 + _packed_size(len(root.path)) + unpaged_size(root.child))
    assert isinstance(root, Branch), f"cannot page a {type(root).__name__}"
    children = sum(1 if child is None else unpaged_size(child) for child in root.children)
    return _rlp_size(1 + _bytes_size(root.value) + _rlp_size(children))


def _rlp_size(payload: int) -> int:
    """An RLP string's or list's bytes, given its payload's (a string of one byte under
    0x80 excepted: ``_bytes_size``)."""
    return payload + (1 if payload < 56 else 1 + (payload.bit_length() + 7) // 8)


def _bytes_size(data: bytes) -> int:
    return 1 if len(data) == 1 and data[0] < 0x80 else _rlp_size(len(data))


def _packed_size(nibbles: int) -> int:
    """``pack_nibbles``'s bytes in RLP: a flag byte, then two nibbles a byte."""
    packed = 1 + (nibbles + 1) // 2
    return 1 if packed == 1 else _rlp_size(packed)


def page_key(version: int, depth: int, seq: int) -> bytes:
    return version.to_bytes(8, "big") + depth.to_bytes(1, "big") + seq.to_bytes(5, "big")


def pack_key(version: int, number: int) -> bytes:
    """The key of pack ``number`` of block ``version``: after the block's pages."""
    return page_key(version, PACK_DEPTH, number)


def describe_key(key: bytes) -> str:
    if len(key) != PAGE_KEY_BYTES:
        return key.hex()
    version, depth, seq = int.from_bytes(key[:8]), key[8], int.from_bytes(key[9:])
    if depth == PACK_DEPTH:
        return f"pack(version={version}, number={seq})"
    return f"page(version={version}, depth={depth}, seq={seq})"


def encode_pack(items: list[tuple[int, int, bytes]]) -> bytes:
    """A pack: several small stored versions (delta pages) of one block in one record, each
    named by (depth, sequence); sealed, and each item checked by its own digest on read."""
    return seal(
        encode_raw([[int_bytes(depth), int_bytes(seq), data] for depth, seq, data in items])
    )


def decode_pack(sealed: bytes, key: bytes) -> dict[tuple[int, int], bytes]:
    """The stored versions in the pack under ``key``, by (depth, sequence); each is checked
    by its own digest when read."""
    where = describe_key(key)
    try:
        return {
            (_int(depth), _int(seq)): data for depth, seq, data in rlp.decode(unseal(sealed, where))
        }
    except (DecodingError, ValueError, TypeError) as err:
        raise PageError(f"{where}: cannot decode: {err}") from err


def unpack(items: dict[tuple[int, int], bytes], key: bytes, depth: int, seq: int) -> bytes:
    """The bytes of page ``seq`` at ``depth`` in the pack ``items`` (``decode_pack``) stored
    under ``key``."""
    data = items.get((depth, seq))
    if data is None:
        raise PageError(f"{describe_key(key)}: holds no page of sequence {seq} at depth {depth}")
    return data


@dataclass
class Entry:
    """A subtree root at ``path`` (nibbles from the trie root) and the child pages below it."""

    path: bytes
    node: Node
    refs: list[PageRef] = field(default_factory=list)
    encoded: bytes | None = field(default=None, repr=False)  # cached ``encode_entry`` result
    node_raw: Raw = field(default=None, repr=False)  # its node's page encoding (for deltas)

    def ref_for(self, path: bytes) -> PageRef | None:
        """The child page whose range holds ``path``."""
        starts = [ref.start for ref in self.refs]
        i = bisect.bisect_right(starts, path) - 1
        if i >= 0 and path <= self.refs[i].end:
            return self.refs[i]
        return None


class _Derived:
    """A page's value derived from its entries: computed on first read and kept in the
    page's ``_<name>`` field, or set there by whoever knows it already."""

    def __init__(self, compute: Callable[[Page], Any]) -> None:
        self.compute = compute

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = "_" + name

    def __get__(self, page: Page | None, owner: type | None = None) -> Any:
        if page is None:
            return self
        value = getattr(page, self.field)
        if value is None:
            value = self.compute(page)
            setattr(page, self.field, value)
        return value

    def __set__(self, page: Page, value: Any) -> None:
        setattr(page, self.field, value)


@dataclass
class Page:
    """A page's entries as of one version; ``chain`` holds the keys of the stored versions
    it is read from (its own first, its full base last) and ``delta_bytes`` the bytes of the
    deltas among them."""

    depth: int
    entries: list[Entry]
    chain: tuple[bytes, ...] = ()
    delta_bytes: int = 0
    _by_path: dict[bytes, Entry] | None = field(default=None, repr=False)
    _paths: list[bytes] | None = field(default=None, repr=False)
    _nodes: list[Node] | None = field(default=None, repr=False)
    _size: int | None = field(default=None, repr=False)

    # derived from the entries, cached (a writer that knows them sets them instead): the
    # nodes and paths a writer compares with the trie's, the entries' bytes
    nodes = _Derived(lambda page: [entry.node for entry in page.entries])
    paths = _Derived(lambda page: [entry.path for entry in page.entries])
    size = _Derived(lambda page: sum(len(encode_entry(entry)) for entry in page.entries))

    def entry(self, path: bytes) -> Entry | None:
        if self._by_path is None:
            self._by_path = {entry.path: entry for entry in self.entries}
        return self._by_path.get(path)


def cut_depth(path_len: int, levels: int) -> int:
    """The first nibble depth below an entry rooted at ``path_len`` that starts a new entry."""
    return (path_len // levels + 1) * levels


_NIBBLES = tuple(bytes([i]) for i in range(16))
_PAST = bytes([16])  # after every nibble: a prefix's paths sort before prefix + _PAST


class _EntryEncoder:
    """One pass over an entry's in-page nodes: their page encoding (children in the page
    inline, children beyond the cut by hash) and the children that start entries below
    (their paths and nodes, in path order: two lists, which a writer slices at C speed).

    A branch whose in-page subtree holds no leaf keeps its encoding on the node (nodes are
    immutable, and such a subtree has no leaf whose anchored storage could change), so a
    dirty entry re-encodes only its changed paths.
    """

    def __init__(self, cut: int, hashed: bool = False) -> None:
        self.cut, self.hashed = cut, hashed
        self.paths: list[bytes] = []  # of the children below
        self.nodes: list[Node] = []
        self.leaves = 0

    def node(self, node: Node, path: bytes, top: bool = False) -> Raw:
        if not top and (
            isinstance(node, Stub) or (len(path) >= self.cut and isinstance(node.ref, bytes))
        ):  # past the cut and by hash, or not loaded: the child starts an entry of its own
            self.paths.append(path)
            self.nodes.append(node)
            return node.ref  # a 32-byte hash: in-page children are lists
        if isinstance(node, Leaf):
            self.leaves += 1
            sub = [] if node.sub is None else node.sub.raw()
            if self.hashed and isinstance(ref := node.ref, bytes):  # (not an inline leaf)
                return [b"H", pack_nibbles(node.path), ref, sub]
            return [b"L", pack_nibbles(node.path), node.value, sub]
        if isinstance(node, Extension):
            return [b"E", pack_nibbles(node.path), self.node(node.child, path + node.path)]
        assert isinstance(node, Branch), f"cannot page a {type(node).__name__}"
        cached = node.paged
        if cached is not None and cached[0] == self.cut and cached[1] == path:
            self.paths.extend(cached[3])
            self.nodes.extend(cached[4])
            return cached[2]
        base, node.base = node.base, None  # (used once: else it keeps old versions alive)
        if base is not None:
            cached = base.paged
            if cached is not None and cached[0] == self.cut and cached[1] == path:
                return self._patched(node, path, cached)
        leaves, first = self.leaves, len(self.paths)
        if len(path) + 1 < self.cut:
            children = [
                b"" if c is None else self.node(c, path + _NIBBLES[i])
                for i, c in enumerate(node.children)
            ]
        else:  # every child at the cut (the top pages' 4,096 of them a block): inline
            children = []
            paths, nodes = self.paths, self.nodes
            for i, c in enumerate(node.children):
                if c is None:
                    children.append(b"")
                    continue
                ref = c._ref  # (computed by the hashing before a write: read directly)
                if ref is None:
                    ref = c.ref
                if isinstance(ref, bytes) or isinstance(c, Stub):
                    paths.append(path + _NIBBLES[i])
                    nodes.append(c)
                    children.append(ref)
                else:  # an inline child stays in the page
                    children.append(self.node(c, path + _NIBBLES[i]))
        raw = [b"B", node.value, children]
        if self.leaves == leaves:
            node.paged = (self.cut, path, raw, self.paths[first:], self.nodes[first:])
        return raw

    def _patched(self, node: Branch, path: bytes, cached: tuple) -> Raw:
        """A branch's encoding from its base's (``cached``): the children it changed redone
        (their part of the base's children below replaced), the rest as they were."""
        _, _, base_raw, base_paths, base_nodes = cached
        children = list(base_raw[2])
        paths, nodes = list(base_paths), list(base_nodes)
        leaves = self.leaves
        for i in node.changed:
            child, child_path = node.children[i], path + _NIBBLES[i]
            # (the base's children below with this prefix: paths are sorted and prefix-free)
            low = bisect.bisect_left(paths, child_path)
            high = bisect.bisect_left(paths, child_path + _PAST, low)
            part = _EntryEncoder(self.cut, self.hashed)
            children[i] = b"" if child is None else part.node(child, child_path)
            paths[low:high], nodes[low:high] = part.paths, part.nodes
            self.leaves += part.leaves
        raw = [b"B", node.value, children]
        if self.leaves == leaves:
            node.paged = (self.cut, path, raw, paths, nodes)
        self.paths.extend(paths)
        self.nodes.extend(nodes)
        return raw


def entry_parts(
    entry: Entry, levels: int, hashed: bool = False
) -> tuple[Raw, list[bytes], list[Node]]:
    """The entry's node encoding, and the paths and nodes of the children starting entries
    below, in path order; ``hashed``: leaves by hash, their values kept elsewhere (``H``)."""
    encoder = _EntryEncoder(cut_depth(len(entry.path), levels), hashed)
    return encoder.node(entry.node, entry.path, top=True), encoder.paths, encoder.nodes


def encode_entry(entry: Entry, node_raw: Raw = None) -> bytes:
    """The entry's bytes in a page (cached on the entry: an unchanged entry keeps them);
    ``node_raw`` is its node's encoding (``entry_parts``) if the entry has none yet."""
    if entry.encoded is None:
        if node_raw is None:
            node_raw = entry.node_raw
        assert node_raw is not None, "an entry encoded before its node"
        entry.node_raw = node_raw
        refs = [ref.raw() for ref in entry.refs]
        entry.encoded = encode_raw([pack_nibbles(entry.path), node_raw, refs])
    return entry.encoded


def encode_page(depth: int, encoded_entries: list[bytes]) -> bytes:
    """A page from entries already encoded (``encode_entry``): RLP list, written by hand
    since the entries are RLP already."""
    payload = encode_raw(int_bytes(depth)) + b"".join(encoded_entries)
    return list_prefix(len(payload)) + payload


Previous = Callable[[int, int, int], Page]  # (version, digest, pack) -> the page then
# (its entries' nodes need not be built: ``decode_page``'s ``nodes``)
Fetch = Callable[[Leaf], bytes]  # a hashed leaf's value


def decode_page(
    data: bytes,
    key: bytes,
    seq: int,
    previous: Previous | None = None,
    fetch: Fetch | None = None,
    nodes: bool = True,
) -> Page:
    """A stored page version's entries, their boundary children as stubs located in the
    entries' refs; a delta page is applied to its previous version, got from ``previous``
    (without ``nodes``: that version's entries as read, their nodes not built, since only
    the version read last is used as nodes); a hashed leaf gets its value from ``fetch``
    when one is asked for."""
    try:
        head, *rest = rlp.decode(data)
        if isinstance(head, list):
            return _decode_delta(head, rest, len(data), key, seq, previous, fetch, nodes)
        depth = _int(head)
        entries = [
            _entry(unpack_nibbles(packed), node_raw, [PageRef.from_raw(r) for r in refs_raw])
            for packed, node_raw, refs_raw in rest
        ]
        if nodes:
            _located(entries, depth, seq, fetch)
        return Page(depth, entries, chain=(key,))
    except (DecodingError, ValueError, TypeError, IndexError, KeyError) as err:
        raise PageError(f"{describe_key(key)}: cannot decode: {err}") from err


_UNBUILT = Leaf(b"", b"")  # the node of an entry read but not built (``decode_page``)


def _entry(path: bytes, node_raw: Raw, refs: list[PageRef]) -> Entry:
    return Entry(path, _UNBUILT, refs, node_raw=node_raw)


def _located(entries: list[Entry], depth: int, seq: int, fetch: Fetch | None) -> None:
    """Build the entries' nodes from their raw encodings (stubs located in their refs)."""
    for entry in entries:
        entry.node = _decode_node(entry.node_raw, entry.path, entry, depth + 1, fetch)
        entry.node.origin = seq


def _decode_delta(
    head: Raw,
    rest: Raw,
    size: int,
    key: bytes,
    seq: int,
    previous: Previous | None,
    fetch: Fetch | None,
    nodes: bool,
) -> Page:
    if previous is None:
        raise ValueError("a delta page read without its previous version")
    depth_raw, *patches = rest
    depth = _int(depth_raw)
    version, checksum, *pack = head
    before = previous(_int(version), _int(checksum), _int(b"".join(pack)))
    if before.depth != depth:
        raise ValueError(f"a delta at depth {depth} over a page at depth {before.depth}")
    entries = {entry.path: entry for entry in before.entries}
    for patch in patches:
        path = unpack_nibbles(patch[0])
        if len(patch) == 1:  # an entry removed
            if entries.pop(path, None) is None:
                raise ValueError(f"a delta removes entry {path.hex()}, which is not there")
            continue
        old = entries.get(path)
        node_raw = apply_diff(patch[1], None if old is None else old.node_raw)
        refs = [
            PageRef.from_raw(r) if isinstance(r, list) else _kept_ref(old, _int(r))
            for r in patch[2]
        ]
        entries[path] = _entry(path, node_raw, refs)
    ordered = [entries[path] for path in sorted(entries)]
    if nodes:  # (the entries changed here, and those versions below left unbuilt)
        _located([entry for entry in ordered if entry.node is _UNBUILT], depth, seq, fetch)
    return Page(depth, ordered, chain=(key, *before.chain), delta_bytes=before.delta_bytes + size)


def _kept_ref(old: Entry | None, index: int) -> PageRef:
    if old is None:
        raise ValueError("a delta keeps a reference of an entry that is new")
    return old.refs[index]


def diff_nodes(new: Raw, old: Raw) -> Raw:
    """``new`` (a node's page encoding) with what ``old`` has unchanged at the same place
    replaced by ``SAME``, and written compactly: a branch of the same kind as
    ``[BRANCH_DIFF, value, bitmap, *changed children]`` (a 16-bit bitmap of the children
    that differ, each as its own diff, in order: the unchanged ones take no byte), a hashed
    leaf with only its hash changed as ``HASH_ONLY`` ‖ hash (one 33-byte string)."""
    if new is old or new == old:
        return SAME
    if not (isinstance(new, list) and isinstance(old, list) and new and old and new[0] == old[0]):
        return new  # (a leaf's sub is [] or a PageRef's fields: taken whole)
    kind = new[0]
    if kind == b"B":
        changed = [(i, n) for i, (n, o) in enumerate(zip(new[2], old[2], strict=True)) if n != o]
        bitmap = sum(1 << (15 - i) for i, _ in changed).to_bytes(2, "big")
        return [BRANCH_DIFF, new[1], bitmap, *(diff_nodes(n, old[2][i]) for i, n in changed)]
    # a path kept is SAME too (a packed path starts with 0 or 1, never with SAME's byte)
    if kind == b"E" and new[1] == old[1]:
        return [kind, SAME, diff_nodes(new[2], old[2])]
    if kind in LEAF_KINDS and new[1] == old[1]:
        sub = diff_nodes(new[3], old[3])
        if kind == b"H" and sub == SAME:
            return HASH_ONLY + new[2]
        return [kind, SAME, new[2], sub]
    return new


def apply_diff(diff: Raw, old: Raw) -> Raw:
    """The encoding ``diff_nodes`` was given, from its result and the same ``old``."""
    if diff == SAME:
        if old is None:
            raise ValueError("a delta keeps a node its previous version does not have")
        return old
    same_kind = isinstance(old, list) and bool(old)
    if isinstance(diff, bytes):
        if len(diff) != 33:  # (none, or a child by hash)
            return diff
        if diff[:1] != HASH_ONLY or not (same_kind and old[0] == b"H"):
            raise ValueError("a delta changes the hash of a leaf its previous version lacks")
        return [b"H", old[1], diff[1:], old[3]]
    if not diff:
        return diff
    kind = diff[0]
    if kind == BRANCH_DIFF:
        if not (same_kind and old[0] == b"B") or len(diff) < 3 or len(diff[2]) != 2:
            raise ValueError("a delta changes children of a branch its previous version lacks")
        bitmap = int.from_bytes(diff[2], "big")
        positions = [i for i in range(16) if bitmap >> (15 - i) & 1]
        if len(positions) != len(diff) - 3:
            raise ValueError("a branch delta whose bitmap does not count its children")
        children = list(old[2])
        for i, child in zip(positions, diff[3:], strict=True):
            children[i] = apply_diff(child, children[i])
        return [b"B", diff[1], children]
    same_kind = same_kind and old[0] == kind
    if kind not in (b"E", *LEAF_KINDS):
        return diff
    path = diff[1]
    if path == SAME:
        if not same_kind:
            raise ValueError("a delta keeps the path of a node its previous version does not have")
        path = old[1]
    if kind == b"E":
        return [kind, path, apply_diff(diff[2], old[2] if same_kind else None)]
    return [kind, path, diff[2], apply_diff(diff[3], old[3] if same_kind else None)]


def encode_delta(
    depth: int,
    before: PageRef,
    removed: list[bytes],
    changed: list[tuple[Entry, Entry | None]],
) -> bytes:
    """A delta page over the page as of ``before``: the paths of the entries ``removed``, and
    each ``changed`` entry (with its ``node_raw``) as a diff from its old one (if any)."""
    patches: list[Raw] = [[pack_nibbles(path)] for path in removed]
    for entry, was in changed:
        if was is None or was.node_raw is None:
            patches.append(
                [pack_nibbles(entry.path), entry.node_raw, [r.raw() for r in entry.refs]]
            )
            continue
        index = {ref: i for i, ref in enumerate(was.refs)}
        refs = [int_bytes(index[r]) if r in index else r.raw() for r in entry.refs]
        patches.append([pack_nibbles(entry.path), diff_nodes(entry.node_raw, was.node_raw), refs])
    head = [int_bytes(before.version), int_bytes(before.digest)]
    if before.pack:
        head.append(int_bytes(before.pack))
    return encode_raw([head, int_bytes(depth), *patches])


def _decode_node(raw: Raw, path: bytes, entry: Entry, depth: int, fetch: Fetch | None) -> Node:
    if isinstance(raw, bytes):
        if len(raw) != 32:
            raise ValueError(f"bad child reference at path {path.hex()}")
        ref = entry.ref_for(path)
        if ref is None:
            raise ValueError(f"no child page holds path {path.hex()}")
        return Stub(raw, (depth, ref, path), ref.seq)
    kind = raw[0]
    if kind == b"L":
        return Leaf(unpack_nibbles(raw[1]), raw[2], _decode_sub(raw[3]))
    if kind == b"H":
        return _hashed_leaf(raw, path, fetch)
    if kind == b"E":
        ext_path = unpack_nibbles(raw[1])
        return Extension(ext_path, _decode_node(raw[2], path + ext_path, entry, depth, fetch))
    if kind == b"B" and len(raw[2]) == 16:
        children = tuple(
            None if c == b"" else _decode_node(c, path + bytes([i]), entry, depth, fetch)
            for i, c in enumerate(raw[2])
        )
        return Branch(children, raw[1])
    raise ValueError(f"unknown node kind {kind!r} at path {path.hex()}")


def _hashed_leaf(raw: Raw, path: bytes, fetch: Fetch | None) -> Leaf:
    leaf_path = unpack_nibbles(raw[1])
    key = path + leaf_path
    if len(raw[2]) != 32 or len(key) % 2:
        raise ValueError(f"bad hashed leaf at path {path.hex()}")
    if fetch is None:
        raise ValueError(f"a hashed leaf at path {path.hex()}, read with nowhere to fetch from")
    return Leaf.hashed(leaf_path, raw[2], from_nibbles(key), fetch, _decode_sub(raw[3]))


def pack_nibbles(nibbles: bytes) -> bytes:
    """Two nibbles a byte, after a byte saying whether the count is odd."""
    odd = len(nibbles) % 2
    return bytes([odd]) + from_nibbles(nibbles + b"\0" * odd)


def unpack_nibbles(data: bytes) -> bytes:
    if not data or data[0] > 1:
        raise ValueError(f"bad packed path {data.hex()}")
    nibbles = to_nibbles(data[1:])
    return nibbles[:-1] if data[0] else nibbles


def _decode_sub(raw: Raw) -> PageRef | None:
    """What an account's leaf anchors: its storage trie's root page, if it is paged."""
    return PageRef.from_raw(raw) if raw else None


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")
