"""The witness cosigns a log that only grew, and refuses a rewritten or shrunk one with its
state untouched; from Python and from its command line."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gzsb.workflow.checkpoint import Checkpoint, Signer, Verifier, sign_checkpoint, verify_checkpoint
from gzsb.workflow.translog import MemoryNodeStore, MerkleTree, leaf_hash
from gzsb.workflow.witness import (
    KEY_FILE,
    PUB_FILE,
    STATE_FILE,
    WitnessError,
    cosign,
    format_proof,
    init_witness,
    load_signer,
    load_state,
    main,
    parse_proof,
)

PROJECT = Path(__file__).resolve().parents[2]
ORIGIN = "gzsb.example/log"
WITNESS_NAME = "kaoshiyuan.example/witness"


class Log:
    """A log in memory with its signing key: grows, signs checkpoints, proves consistency."""

    def __init__(self, signer: Signer | None = None, tag: str = "event") -> None:
        self.signer = signer or Signer.generate(ORIGIN)
        self.tree = MerkleTree(MemoryNodeStore())
        self.tag = tag

    @property
    def vkey(self) -> str:
        return self.signer.verifier().encode()

    def grow(self, count: int, tag: str | None = None) -> Log:
        start = self.tree.size
        self.tree.append(leaf_hash(f"{tag or self.tag} {i}".encode()) for i in range(start, start + count))
        return self

    def checkpoint(self, size: int | None = None) -> str:
        size = self.tree.size if size is None else size
        return sign_checkpoint(Checkpoint(ORIGIN, size, self.tree.root(size)), self.signer)

    def proof(self, old: int, new: int | None = None) -> str:
        new = self.tree.size if new is None else new
        return format_proof(old, self.tree.consistency_proof(old, new))


@pytest.fixture
def wdir(tmp_path: Path) -> Path:
    directory = tmp_path / "witness"
    init_witness(directory, WITNESS_NAME)
    return directory


def _state_bytes(directory: Path) -> bytes:
    return (directory / STATE_FILE).read_bytes()


def _witness_key(directory: Path) -> Verifier:
    return Verifier.parse((directory / PUB_FILE).read_text())


def test_init_makes_a_private_key_and_refuses_to_overwrite_it(tmp_path: Path) -> None:
    directory = tmp_path / "w"
    vkey = init_witness(directory, WITNESS_NAME)
    key_path = directory / KEY_FILE
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert load_signer(directory).verifier() == Verifier.parse(vkey)
    assert (directory / PUB_FILE).read_text() == vkey + "\n"
    before = key_path.read_bytes()
    with pytest.raises(WitnessError, match="already"):
        init_witness(directory, WITNESS_NAME)
    assert key_path.read_bytes() == before
    os.chmod(key_path, 0o644)
    with pytest.raises(WitnessError, match="chmod 600"):
        load_signer(directory)
    with pytest.raises(WitnessError, match="run 'init'"):
        load_signer(tmp_path / "nothing")


def test_first_cosign_then_a_grown_log(wdir: Path) -> None:
    log = Log().grow(5)
    first = cosign(wdir, log.vkey, log.checkpoint(), None, now=1_700_000_000)
    assert first.first_use and first.size == 5
    verified = verify_checkpoint(first.note, log.signer.verifier(), [_witness_key(wdir)], required_witnesses=1)
    assert verified.opened.cosigned_at == {WITNESS_NAME: 1_700_000_000}
    state = load_state(wdir)[ORIGIN]
    assert (state.size, state.root, state.trusted_on_first_use_at) == (
        5,
        base64.b64encode(log.tree.root(5)).decode(),
        1_700_000_000,
    )

    log.grow(12)
    second = cosign(wdir, log.vkey, log.checkpoint(), log.proof(5), now=1_700_000_300)
    assert not second.first_use and second.size == 17
    verify_checkpoint(second.note, log.signer.verifier(), [_witness_key(wdir)], required_witnesses=1)
    assert load_state(wdir)[ORIGIN].size == 17
    assert load_state(wdir)[ORIGIN].trusted_on_first_use_at == 1_700_000_000
    # The same head again is fine (a fresh cosignature), and so is a power-of-two start.
    cosign(wdir, log.vkey, log.checkpoint(), format_proof(17, []), now=1_700_000_400)
    log.grow(15)
    cosign(wdir, log.vkey, log.checkpoint(), log.proof(17))
    assert stat.S_IMODE((wdir / STATE_FILE).stat().st_mode) == 0o600


def _refused(wdir: Path, log_key: str, note: str, proof: str | None, match: str) -> None:
    before = _state_bytes(wdir)
    with pytest.raises(WitnessError, match=match):
        cosign(wdir, log_key, note, proof)
    assert _state_bytes(wdir) == before


def test_rewritten_log_is_refused_and_state_unchanged(wdir: Path) -> None:
    honest = Log().grow(10)
    cosign(wdir, honest.vkey, honest.checkpoint(), None)
    # The database owner rewrites event 3 and recomputes everything, with the real log key.
    forged = Log(honest.signer).grow(3).grow(1, tag="rewritten").grow(6)
    assert forged.tree.root(10) != honest.tree.root(10)
    _refused(wdir, honest.vkey, forged.checkpoint(), format_proof(10, []), "rewritten: size 10")
    # ... and grows it, hoping a proof from the rewritten tree passes.
    forged.grow(7)
    _refused(wdir, honest.vkey, forged.checkpoint(), forged.proof(10), "not an extension of the cosigned size 10")
    # A proof of the honest log does not make the forged root consistent either.
    honest.grow(7)
    _refused(wdir, honest.vkey, forged.checkpoint(), honest.proof(10), "not an extension")
    # A tampered proof for the honest head is refused too.
    proof = honest.proof(10).split("\n")
    proof[1] = base64.b64encode(bytes(32)).decode()
    _refused(wdir, honest.vkey, honest.checkpoint(), "\n".join(proof), "not an extension")
    # And the honest growth is still cosigned afterwards.
    assert cosign(wdir, honest.vkey, honest.checkpoint(), honest.proof(10)).size == 17


def test_shrunk_or_unproven_log_is_refused(wdir: Path) -> None:
    log = Log().grow(9)
    cosign(wdir, log.vkey, log.checkpoint(), None)
    _refused(wdir, log.vkey, log.checkpoint(8), None, "shrank from size 9")
    log.grow(3)
    _refused(wdir, log.vkey, log.checkpoint(), None, "consistency proof from size 9 to 12 is required")
    _refused(wdir, log.vkey, log.checkpoint(), log.proof(8), "starts at size 8")
    _refused(wdir, log.vkey, log.checkpoint(), "old 9\nnot base64!\n", "not base64")
    _refused(wdir, log.vkey, log.checkpoint(), "9\n", "old <size>")


def test_bad_log_signature_or_key_is_refused(wdir: Path) -> None:
    log = Log().grow(4)
    cosign(wdir, log.vkey, log.checkpoint(), None)
    impostor = Log(Signer.generate(ORIGIN)).grow(4)
    _refused(wdir, log.vkey, impostor.checkpoint(), None, "no signature from a known key")
    _refused(wdir, impostor.vkey, impostor.checkpoint(), None, "not the key pinned")
    tampered = log.checkpoint().replace("\n4\n", "\n5\n")
    _refused(wdir, log.vkey, tampered, None, "does not verify")


def test_proof_file_format() -> None:
    hashes = [bytes([i]) * 32 for i in range(3)]
    text = format_proof(20852014, hashes)
    assert text.startswith("old 20852014\n") and text.count("\n") == 4
    assert parse_proof(text) == (20852014, hashes)
    assert parse_proof(text + "\n") == (20852014, hashes)
    with pytest.raises(WitnessError, match="end with a newline"):
        parse_proof(text[:-1])
    with pytest.raises(WitnessError, match="leading zeros"):
        parse_proof("old 012\n")
    with pytest.raises(WitnessError, match="holds 3 bytes"):
        parse_proof("old 1\nAAAA\n")


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wdir = tmp_path / "w"
    assert main(["init", "--dir", str(wdir), "--name", WITNESS_NAME]) == 0
    vkey = capsys.readouterr().out.strip()
    log = Log().grow(6)
    (tmp_path / "cp").write_text(log.checkpoint())
    out = tmp_path / "cosigned"
    assert main(["cosign", "--dir", str(wdir), "--log-key", log.vkey, "--checkpoint", str(tmp_path / "cp")]) == 0
    captured = capsys.readouterr()
    assert "trusted on first use" in captured.err
    verify_checkpoint(captured.out, log.signer.verifier(), [Verifier.parse(vkey)], required_witnesses=1)

    log.grow(4)
    (tmp_path / "cp").write_text(log.checkpoint())
    (tmp_path / "proof").write_text(log.proof(6))
    args = ["cosign", "--dir", str(wdir), "--log-key", log.vkey, "--checkpoint", str(tmp_path / "cp")]
    assert main([*args, "--proof", str(tmp_path / "proof"), "--out", str(out)]) == 0
    assert "consistent with the last cosigned checkpoint" in capsys.readouterr().err
    verify_checkpoint(out.read_text(), log.signer.verifier(), [Verifier.parse(vkey)], required_witnesses=1)

    (tmp_path / "cp").write_text(log.checkpoint(7))
    assert main(args) == 1
    assert "the log shrank from size 10" in capsys.readouterr().err
    assert json.loads((wdir / STATE_FILE).read_text())["logs"][ORIGIN]["size"] == 10


def test_runs_as_a_module_without_the_app(tmp_path: Path) -> None:
    # As the authority runs it: its imports must not pull in Flask or the database.
    check = "import sys, gzsb.workflow.witness; assert not {'flask', 'sqlalchemy'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", check], cwd=PROJECT, check=True)
    command = [sys.executable, "-m", "gzsb.workflow.witness", "init", "--dir", str(tmp_path / "w"), "--name", "w.ex/x"]
    done = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("w.ex/x+")
