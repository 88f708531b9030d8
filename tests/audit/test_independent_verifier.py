"""The auditor's independent verifier agrees with the project's log on every leaf of a tree,
and refuses what the project refuses: a wrong leaf, index or proof, a checkpoint signed by
another key, and (when required) a checkpoint without the witness's cosignature."""

from __future__ import annotations

import ast
import base64
from pathlib import Path

import pytest

from gzsb.workflow.checkpoint import ALG_COSIGNATURE_V1, Checkpoint, Signer, add_signatures, sign_checkpoint
from gzsb.workflow.translog import MemoryNodeStore, MerkleTree, leaf_hash
from tests.audit import independent_verifier as iv

ORIGIN = "gzsb.example/log"
LOG = Signer.generate(ORIGIN)
WITNESS = Signer.generate("kaoshiyuan.example/witness", ALG_COSIGNATURE_V1)
SIZE = 37


@pytest.fixture(scope="module")
def tree() -> MerkleTree:
    t = MerkleTree(MemoryNodeStore())
    t.append(leaf_hash(f"event {i}".encode()) for i in range(SIZE))
    return t


@pytest.fixture(scope="module")
def note(tree: MerkleTree) -> str:
    return add_signatures(sign_checkpoint(Checkpoint(ORIGIN, SIZE, tree.root()), LOG), [WITNESS])


def test_imports_nothing_from_the_project() -> None:
    source = Path(iv.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "base64", "hashlib", "json", "cryptography"}


def test_every_leaf_verifies(tree: MerkleTree, note: str) -> None:
    log_vkey, witness_vkey = LOG.verifier().encode(), WITNESS.verifier().encode()
    for index in range(SIZE):
        leaf = iv.leaf_hash(f"event {index}".encode())
        assert leaf == tree.leaf(index)
        got = iv.verify_leaf(leaf, index, tree.inclusion_proof(index, SIZE), note, log_vkey, witness_vkey)
        assert got == (ORIGIN, SIZE, tree.root())


def test_refusals(tree: MerkleTree, note: str) -> None:
    log_vkey, witness_vkey = LOG.verifier().encode(), WITNESS.verifier().encode()
    leaf, proof = tree.leaf(5), tree.inclusion_proof(5, SIZE)
    with pytest.raises(iv.VerifyError, match="another root"):
        iv.verify_leaf(tree.leaf(6), 5, proof, note, log_vkey)
    with pytest.raises(iv.VerifyError, match="another root"):
        iv.verify_leaf(leaf, 4, proof, note, log_vkey)
    with pytest.raises(iv.VerifyError, match="another root"):
        iv.verify_leaf(leaf, 5, [bytes(32), *proof[1:]], note, log_vkey)
    with pytest.raises(iv.VerifyError, match="fewer hashes"):
        iv.verify_leaf(leaf, 5, proof[:-1], note, log_vkey)
    with pytest.raises(iv.VerifyError, match="not below"):
        iv.verify_leaf(leaf, SIZE, proof, note, log_vkey)
    other = Signer.generate(ORIGIN)
    with pytest.raises(iv.VerifyError, match="no signature"):
        iv.verify_leaf(leaf, 5, proof, note, other.verifier().encode())
    bare = sign_checkpoint(Checkpoint(ORIGIN, SIZE, tree.root()), LOG)
    assert iv.verify_leaf(leaf, 5, proof, bare, log_vkey)[1] == SIZE
    with pytest.raises(iv.VerifyError, match="no signature by 'kaoshiyuan.example/witness'"):
        iv.verify_leaf(leaf, 5, proof, bare, log_vkey, witness_vkey)
    # The checkpoint's size edited: the log's signature breaks.
    edited = note.replace(f"\n{SIZE}\n", f"\n{SIZE + 1}\n", 1)
    with pytest.raises(iv.VerifyError, match="invalid"):
        iv.verify_leaf(leaf, 5, proof, edited, log_vkey)
    # A forged cosignature timestamp.
    line = note.rstrip("\n").rsplit("\n", 1)[1]
    raw = base64.b64decode(line.rsplit(" ", 1)[1])
    forged = raw[:4] + (int.from_bytes(raw[4:12], "big") + 1).to_bytes(8, "big") + raw[12:]
    forged_note = note.replace(line, line.rsplit(" ", 1)[0] + " " + base64.b64encode(forged).decode())
    with pytest.raises(iv.VerifyError, match="invalid"):
        iv.verify_leaf(leaf, 5, proof, forged_note, log_vkey, witness_vkey)
    with pytest.raises(iv.VerifyError, match="key id does not match"):
        name, _, key = log_vkey.split("+", 2)
        iv.parse_vkey(f"{name}+00000000+{key}")


def test_go_reference_note() -> None:
    # golang.org/x/mod/sumdb/note's example key and note (see tests/workflow/test_checkpoint.py).
    vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
    sig = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
    assert iv.check_signature(f"{text}\n\u2014 PeterNeumann {sig}\n", vkey) is None
