"""An append-only Merkle tree with RFC 9162 (RFC 6962) hashing, over any node store.

The tree never keeps leaves in memory: it stores the hash of every *perfect* subtree,
keyed by ``(level, index)`` (level 0 holds the leaf hashes, node ``(l, i)`` covers leaves
``[i * 2**l, (i + 1) * 2**l)``), as Trillian and CT logs do. A node, once written, never
changes, so a SQL table ``(level, index) -> hash`` can hold the tree. Any range
``[start, end)`` that a root or a proof needs splits into at most ~log2(n) such stored
nodes, so the root at any size, an inclusion proof and a consistency proof each cost one
batched read of O(log n) nodes, and appending k leaves costs one read of the right-hand
frontier (popcount(size) nodes) plus one batched write of about 2k nodes.

Proof verification is standalone (no store) and raises ``ProofError`` naming the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeKey = tuple[int, int]  # (level, index)


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class TreeError(Exception):
    """The tree or its store cannot answer: a bad size or index, a missing node, a race."""


class ProofError(ValueError):
    """A proof did not verify; the message says why."""


class NodeStore(Protocol):
    """Where the perfect-subtree hashes live.

    Implementations must make ``put_many`` atomic and must refuse it (raise) when the stored
    size is not ``old_size``: that is what stops two appenders from interleaving. A SQL
    implementation keeps one row per node plus the current size (e.g. in a tree-head row
    updated with ``WHERE size = :old_size``), and answers ``get_many`` with a single
    ``WHERE (level, idx) IN (...)`` query.
    """

    def size(self) -> int:
        """Number of leaves appended so far."""
        ...

    def get_many(self, keys: Collection[NodeKey]) -> Mapping[NodeKey, bytes]:
        """The hashes stored under ``keys``; keys that are not stored are left out."""
        ...

    def put_many(self, nodes: Mapping[NodeKey, bytes], old_size: int, new_size: int) -> None:
        """Store new nodes (never overwriting one) and move the size from old to new."""
        ...


class MemoryNodeStore:
    """A NodeStore in memory: one bytearray per level, 32 bytes a node (compact for 10⁶ leaves)."""

    def __init__(self) -> None:
        self._levels: list[bytearray] = []
        self._size = 0

    def size(self) -> int:
        return self._size

    def node_count(self) -> int:
        return sum(len(row) for row in self._levels) // HASH_SIZE

    def get_many(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
        out: dict[NodeKey, bytes] = {}
        for level, index in keys:
            if level < len(self._levels) and index >= 0:
                row = self._levels[level]
                start = index * HASH_SIZE
                if start + HASH_SIZE <= len(row):
                    out[(level, index)] = bytes(row[start : start + HASH_SIZE])
        return out

    def put_many(self, nodes: Mapping[NodeKey, bytes], old_size: int, new_size: int) -> None:
        if old_size != self._size:
            raise TreeError(f"concurrent append: the store holds {self._size} leaves, the appender expected {old_size}")
        # Nodes of one level arrive in index order; each must land exactly at the end.
        for (level, index), value in sorted(nodes.items()):
            while len(self._levels) <= level:
                self._levels.append(bytearray())
            row = self._levels[level]
            if index * HASH_SIZE != len(row) or len(value) != HASH_SIZE:
                raise TreeError(f"node ({level}, {index}) would overwrite or leave a gap")
            row += value
        self._size = new_size


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _cover(start: int, end: int) -> list[NodeKey]:
    """The stored perfect subtrees that make up [start, end), left to right.

    Every range a root or proof asks for starts at a multiple of a power of two at least
    as large as its length (RFC 9162's split keeps that true), so the binary digits of the
    length, from the highest down, give aligned perfect subtrees.
    """
    keys: list[NodeKey] = []
    pos = start
    for level in range((end - start).bit_length() - 1, -1, -1):
        if (end - start) >> level & 1:
            keys.append((level, pos >> level))
            pos += 1 << level
    return keys


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The subtree ranges whose hashes form PATH(index, D[0:size]), bottom-up (RFC 9162 §2.1.3.1)."""
    top_down: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        mid = start + _largest_power_of_two_below(end - start)
        if index < mid:
            top_down.append((mid, end))
            end = mid
        else:
            top_down.append((start, mid))
            start = mid
    return top_down[::-1]


def _consistency_ranges(old: int, size: int) -> list[tuple[int, int]]:
    """The subtree ranges whose hashes form PROOF(old, D[0:size]), bottom-up (RFC 9162 §2.1.4.1)."""
    if old == 0 or old == size:
        return []
    top_down: list[tuple[int, int]] = []
    start, end, m, whole = 0, size, old, True
    while m != end - start:
        k = _largest_power_of_two_below(end - start)
        if m <= k:
            top_down.append((start + k, end))
            end = start + k
        else:
            top_down.append((start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        # SUBPROOF(m, D[m], false): the old tree's subtree itself is part of the proof.
        top_down.append((start, end))
    return top_down[::-1]


class MerkleTree:
    """An append-only RFC 9162 tree over a NodeStore."""

    def __init__(self, store: NodeStore) -> None:
        self.store = store

    @property
    def size(self) -> int:
        return self.store.size()

    def append(self, leaf_hashes: Iterable[bytes]) -> int:
        """Append leaves (their hashes, see ``leaf_hash``) and the parents they complete; returns the new size."""
        old = self.size
        frontier_keys = _cover(0, old)
        stored = self._fetch(frontier_keys, old)
        # The frontier is a stack of perfect subtrees, largest first; a new leaf merges with
        # the top while they are the same height, exactly like binary addition's carries.
        stack = [(level, index, stored[(level, index)]) for level, index in frontier_keys]
        writes: dict[NodeKey, bytes] = {}
        size = old
        for value in leaf_hashes:
            if len(value) != HASH_SIZE:
                raise TreeError(f"leaf {size}: a leaf hash must be {HASH_SIZE} bytes, got {len(value)}")
            level, index, node = 0, size, value
            writes[(0, index)] = node
            while stack and stack[-1][0] == level:
                node = node_hash(stack.pop()[2], node)
                level, index = level + 1, index >> 1
                writes[(level, index)] = node
            stack.append((level, index, node))
            size += 1
        if size != old:
            self.store.put_many(writes, old, size)
        return size

    def leaf(self, index: int) -> bytes:
        """The stored leaf hash at ``index``."""
        self._check_size(index + 1)
        return self._fetch([(0, index)], index + 1)[(0, index)]

    def root(self, size: int | None = None) -> bytes:
        """MTH(D[0:size]); the current size by default."""
        size = self.size if size is None else size
        self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return self._hashes([(0, size)], size)[0]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[0:size]), the audit path of leaf ``index`` in the tree of ``size`` leaves."""
        self._check_size(size)
        if not 0 <= index < size:
            raise TreeError(f"leaf index {index} is outside a tree of size {size}")
        return self._hashes(_inclusion_ranges(index, size), size)

    def consistency_proof(self, old: int, size: int) -> list[bytes]:
        """PROOF(old, D[0:size]) that the tree of ``old`` leaves is a prefix of the one of ``size``."""
        self._check_size(size)
        if not 0 <= old <= size:
            raise TreeError(f"cannot prove consistency from size {old} to the smaller size {size}")
        return self._hashes(_consistency_ranges(old, size), size)

    def _check_size(self, size: int) -> None:
        current = self.size
        if not 0 <= size <= current:
            raise TreeError(f"tree size {size} is not available: the log holds {current} leaves")

    def _fetch(self, keys: Sequence[NodeKey], size: int) -> Mapping[NodeKey, bytes]:
        if not keys:
            return {}  # spares the store an empty IN () query
        got = self.store.get_many(keys)
        missing = [key for key in keys if key not in got]
        if missing:
            raise TreeError(f"the store lacks nodes {missing} needed at tree size {size}")
        return got

    def _hashes(self, ranges: Sequence[tuple[int, int]], size: int) -> list[bytes]:
        """The hash of each range, with every stored node they need read in one batch."""
        covers = [_cover(start, end) for start, end in ranges]
        stored = self._fetch(list(dict.fromkeys(key for cover in covers for key in cover)), size)
        out: list[bytes] = []
        for cover in covers:
            # MTH of an aligned range = its perfect parts folded from the right (RFC 9162 split).
            value = stored[cover[-1]]
            for key in reversed(cover[:-1]):
                value = node_hash(stored[key], value)
            out.append(value)
        return out


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that an inclusion proof implies for ``leaf`` (RFC 9162 §2.1.3.2, steps 1-4)."""
    _check_hash(leaf, "the leaf hash")
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for position, p in enumerate(proof):
        _check_hash(p, f"proof element {position}")
        if sn == 0:
            raise ProofError(f"the proof is too long: {len(proof)} hashes for leaf {index} of {size}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"the proof is too short: {len(proof)} hashes for leaf {index} of {size}")
    return r


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` leaves with ``root``; raises ProofError."""
    _check_hash(root, "the root hash")
    computed = root_from_inclusion(leaf, index, size, proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof for leaf {index} of {size} gives root {computed.hex()}, expected {root.hex()}"
        )


def verify_consistency(old: int, size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree (old, old_root) is a prefix of (size, new_root) (RFC 9162 §2.1.4.2); raises ProofError."""
    _check_hash(old_root, "the old root")
    _check_hash(new_root, "the new root")
    for position, p in enumerate(proof):
        _check_hash(p, f"proof element {position}")
    if not 0 <= old <= size:
        raise ProofError(f"the tree shrank from size {old} to {size}")
    if old == size:
        if proof:
            raise ProofError(f"a consistency proof between equal sizes ({size}) must be empty")
        if old_root != new_root:
            raise ProofError(f"two different roots for size {size}: {old_root.hex()} and {new_root.hex()}")
        return
    if old == 0:
        # Every tree extends the empty one; RFC 9162 defines no proof for it.
        if proof:
            raise ProofError("a consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError(f"empty consistency proof from size {old} to {size}")
    path = list(proof)
    if old & (old - 1) == 0:
        # The old tree is a perfect subtree of the new one: its root is the proof's first node.
        path.insert(0, old_root)
    fn, sn = old - 1, size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"the consistency proof from {old} to {size} is too long ({len(proof)} hashes)")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"the consistency proof from {old} to {size} is too short ({len(proof)} hashes)")
    if fr != old_root:
        raise ProofError(f"consistency proof gives old root {fr.hex()} for size {old}, expected {old_root.hex()}")
    if sr != new_root:
        raise ProofError(f"consistency proof gives new root {sr.hex()} for size {size}, expected {new_root.hex()}")
