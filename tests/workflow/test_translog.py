"""The Merkle tree of the transparency log against a naive, recursive transcription of the
RFC 9162 definitions (MTH, PATH, PROOF), exhaustively for small trees; tampered proofs fail;
the 8-leaf known-answer vectors; and the O(log n) cost the database store will rely on."""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Collection, Mapping, Sequence

import pytest

from gzsb.workflow.translog import (
    EMPTY_ROOT,
    MemoryNodeStore,
    MerkleTree,
    NodeKey,
    ProofError,
    TreeError,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

MAX_N = 70
# One spare leaf: tampering tests compare against the root of size n + 1.
DATA = [f"leaf {i}".encode() for i in range(MAX_N + 1)]
LEAVES = [hashlib.sha256(b"\x00" + d).digest() for d in DATA]


# -- the naive reference: RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1 written as recursion over lists


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@functools.cache
def mth(start: int, end: int) -> bytes:
    n = end - start
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return LEAVES[start]
    k = _k(n)
    return hashlib.sha256(b"\x01" + mth(start, start + k) + mth(start + k, end)).digest()


def path(m: int, start: int, end: int) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return path(m, start, start + k) + [mth(start + k, end)]
    return path(m - k, start + k, end) + [mth(start, start + k)]


def subproof(m: int, start: int, end: int, whole: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if whole else [mth(start, end)]
    k = _k(n)
    if m <= k:
        return subproof(m, start, start + k, whole) + [mth(start + k, end)]
    return subproof(m - k, start + k, end, False) + [mth(start, start + k)]


def proof(m: int, n: int) -> list[bytes]:
    return [] if m in (0, n) else subproof(m, 0, n, True)


def flipped(value: bytes, at: int = 0) -> bytes:
    return value[:at] + bytes([value[at] ^ 0x01]) + value[at + 1 :]


@pytest.fixture(scope="module")
def grown() -> MerkleTree:
    tree = MerkleTree(MemoryNodeStore())
    tree.append(LEAVES)
    return tree


def test_hash_primitives() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert MerkleTree(MemoryNodeStore()).root() == EMPTY_ROOT


def test_roots_and_proofs_match_the_definitions_for_every_small_tree(grown: MerkleTree) -> None:
    for n in range(0, MAX_N + 1):
        assert grown.root(n) == mth(0, n), n
        for index in range(n):
            p = grown.inclusion_proof(index, n)
            assert p == path(index, 0, n), (index, n)
            verify_inclusion(LEAVES[index], index, n, p, mth(0, n))
        for m in range(0, n + 1):
            c = grown.consistency_proof(m, n)
            assert c == proof(m, n), (m, n)
            verify_consistency(m, n, mth(0, m), mth(0, n), c)


def test_growing_one_leaf_at_a_time_or_in_odd_batches_stores_the_same_tree(grown: MerkleTree) -> None:
    single = MerkleTree(MemoryNodeStore())
    for n, value in enumerate(LEAVES[:MAX_N], start=1):
        assert single.append([value]) == n
        assert single.root() == mth(0, n)
    batched = MerkleTree(MemoryNodeStore())
    at = 0
    for step in (1, 2, 3, 5, 8, 13, 21, 17):
        batched.append(LEAVES[at : at + step])
        at += step
    assert batched.size == at == MAX_N
    for n in range(MAX_N + 1):
        assert batched.root(n) == single.root(n) == grown.root(n)
    assert batched.append([]) == MAX_N
    assert [grown.leaf(i) for i in range(MAX_N + 1)] == LEAVES


def test_tampered_inclusion_proofs_fail(grown: MerkleTree) -> None:
    roots = [mth(0, n) for n in range(MAX_N + 2)]
    for n in range(1, MAX_N + 1):
        for index in range(n):
            p = grown.inclusion_proof(index, n)
            leaf = LEAVES[index]
            for i in range(len(p)):
                bad = list(p)
                bad[i] = flipped(p[i], i % 32)
                with pytest.raises(ProofError, match="gives root"):
                    verify_inclusion(leaf, index, n, bad, roots[n])
            with pytest.raises(ProofError):
                verify_inclusion(flipped(leaf), index, n, p, roots[n])
            with pytest.raises(ProofError):
                verify_inclusion(leaf, index, n, p, flipped(roots[n]))
            if p:
                with pytest.raises(ProofError):
                    verify_inclusion(leaf, index, n, p[:-1], roots[n])
            with pytest.raises(ProofError):
                verify_inclusion(leaf, index, n, [*p, roots[n]], roots[n])
            for other in (index - 1, index + 1):
                if 0 <= other < n:
                    with pytest.raises(ProofError):
                        verify_inclusion(leaf, other, n, p, roots[n])
            # A wrong size is caught against that size's root (a checkpoint names both).
            for other in (n - 1, n + 1):
                if other > index:
                    with pytest.raises(ProofError):
                        verify_inclusion(leaf, index, other, p, roots[other])
    with pytest.raises(ProofError, match="outside"):
        verify_inclusion(LEAVES[3], 3, 3, [], roots[3])
    with pytest.raises(ProofError, match="must be 32 bytes"):
        verify_inclusion(LEAVES[0], 0, 2, [b"short"], roots[2])


def test_tampered_consistency_proofs_fail(grown: MerkleTree) -> None:
    roots = [mth(0, n) for n in range(MAX_N + 2)]
    for n in range(1, MAX_N + 1):
        for m in range(1, n):
            c = grown.consistency_proof(m, n)
            for i in range(len(c)):
                bad = list(c)
                bad[i] = flipped(c[i], 31 - i % 32)
                with pytest.raises(ProofError):
                    verify_consistency(m, n, roots[m], roots[n], bad)
            with pytest.raises(ProofError):
                verify_consistency(m, n, roots[m], roots[n], c[:-1])
            with pytest.raises(ProofError):
                verify_consistency(m, n, roots[m], roots[n], [*c, roots[n]])
            with pytest.raises(ProofError):
                verify_consistency(m, n, flipped(roots[m]), roots[n], c)
            with pytest.raises(ProofError):
                verify_consistency(m, n, roots[m], flipped(roots[n]), c)
            with pytest.raises(ProofError):
                verify_consistency(m - 1 or m + 1, n, roots[m - 1 or m + 1], roots[n], c)
            with pytest.raises(ProofError):
                verify_consistency(m, n + 1, roots[m], roots[n + 1], c)
    with pytest.raises(ProofError, match="shrank"):
        verify_consistency(5, 4, roots[5], roots[4], [])
    with pytest.raises(ProofError, match="two different roots"):
        verify_consistency(4, 4, roots[4], roots[5], [])
    with pytest.raises(ProofError, match="empty consistency proof"):
        verify_consistency(3, 4, roots[3], roots[4], [])
    verify_consistency(0, 4, EMPTY_ROOT, roots[4], [])
    verify_consistency(4, 4, roots[4], roots[4], [])


def test_eight_leaf_known_answers() -> None:
    # Leaf inputs, node hashes and roots of transparency-dev/merkle, testonly/constants.go
    # (LeafInputs, NodeHashes, RootHashes), the vectors shared with certificate-transparency-go.
    inputs = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
    level0 = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ]
    level1 = [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ]
    level2 = [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
    roots = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    store = MemoryNodeStore()
    tree = MerkleTree(store)
    tree.append(leaf_hash(bytes.fromhex(x)) for x in inputs)
    assert [tree.root(n).hex() for n in range(9)] == roots
    stored = store.get_many([(0, i) for i in range(8)] + [(1, i) for i in range(4)] + [(2, 0), (2, 1), (3, 0)])
    assert [stored[(0, i)].hex() for i in range(8)] == level0
    assert [stored[(1, i)].hex() for i in range(4)] == level1
    assert [stored[(2, i)].hex() for i in range(2)] == level2
    h = bytes.fromhex
    # RFC 9162 §2.1.5's examples on this tree: PATH(0, D[8]) = [b, h, l] (bottom-up siblings);
    # PROOF(3, D[7]) = [c, d, g, l] with l = MTH(D[4:7]).
    assert tree.inclusion_proof(0, 8) == [h(level0[1]), h(level1[1]), h(level2[1])]
    l47 = node_hash(h(level1[2]), h(level0[6]))
    assert tree.consistency_proof(3, 7) == [h(level0[2]), h(level0[3]), h(level1[0]), l47]
    assert tree.consistency_proof(4, 7) == [l47]
    assert tree.consistency_proof(6, 7) == [h(level1[2]), h(level0[6]), h(level2[0])]


def test_tree_refuses_sizes_it_does_not_have(grown: MerkleTree) -> None:
    with pytest.raises(TreeError, match="not available"):
        grown.root(MAX_N + 2)
    with pytest.raises(TreeError, match="outside"):
        grown.inclusion_proof(5, 5)
    with pytest.raises(TreeError, match="smaller size"):
        grown.consistency_proof(6, 5)
    with pytest.raises(TreeError, match="32 bytes"):
        MerkleTree(MemoryNodeStore()).append([b"short"])


def test_store_refuses_a_concurrent_append() -> None:
    store = MemoryNodeStore()
    first, second = MerkleTree(store), MerkleTree(store)
    first.append(LEAVES[:3])
    store.put_many({(0, 3): LEAVES[3]}, 3, 4)
    with pytest.raises(TreeError, match="concurrent append"):
        store.put_many({(0, 4): LEAVES[4]}, 3, 5)
    with pytest.raises(TreeError, match="overwrite"):
        store.put_many({(0, 3): LEAVES[4]}, 4, 5)
    assert second.size == 4


class CountingStore(MemoryNodeStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[int] = []
        self.writes: list[int] = []

    def get_many(self, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
        self.reads.append(len(keys))
        return super().get_many(keys)

    def put_many(self, nodes: Mapping[NodeKey, bytes], old_size: int, new_size: int) -> None:
        self.writes.append(len(nodes))
        super().put_many(nodes, old_size, new_size)


def _one_batch(store: CountingStore, limit: float) -> None:
    # At most one read (none when nothing is needed, e.g. the proof of a 1-leaf tree).
    assert len(store.reads) <= 1 and sum(store.reads) <= limit, store.reads
    store.reads.clear()


@pytest.mark.parametrize("size", [1, 2, 3, 1000, 1023, 1024, 4097])
def test_every_operation_is_one_batched_read_of_log_n_nodes(size: int) -> None:
    store = CountingStore()
    tree = MerkleTree(store)
    tree.append(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size))
    assert store.reads == [] and store.writes == [sum(size >> level for level in range(size.bit_length()))]
    store.reads.clear()
    log_n = math.ceil(math.log2(size)) if size > 1 else 0
    tree.root(size)
    _one_batch(store, log_n + 1)
    for index in {0, size // 3, size - 1}:
        tree.inclusion_proof(index, size)
        _one_batch(store, 2 * log_n + 1)
    for old in {1, size // 2, size - 1}:
        tree.consistency_proof(old, size)
        _one_batch(store, 2 * log_n + 2)
    # One more leaf: one read of the frontier, leaf + completed parents written at once.
    store.writes.clear()
    tree.append([LEAVES[0]])
    _one_batch(store, log_n + 1)
    assert store.writes == [1 + ((size + 1) & -(size + 1)).bit_length() - 1]


def test_root_from_inclusion_recomputes_the_root(grown: MerkleTree) -> None:
    got: Sequence[bytes] = grown.inclusion_proof(17, 40)
    assert root_from_inclusion(LEAVES[17], 17, 40, got) == mth(0, 40)
