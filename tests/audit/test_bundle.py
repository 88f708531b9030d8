"""A real export: the bundle verifies offline with `flask audit verify --file` and with the
independent verifier (hashlib + cryptography only); tampered bundles fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gzsb.workflow.checkpoint import Signer
from tests.audit import independent_verifier as iv
from tests.audit.test_tamper import cli, fleet  # noqa: F401  (the fixture)
from tests.drive import uid_of


@pytest.fixture
def bundle(app: Flask, fleet: dict[str, Any], tmp_path: Path) -> Path:  # noqa: F811
    path = tmp_path / "bundle.json"
    result = cli(app, "audit", "export", "--application", uid_of(fleet["done"]), "-o", str(path))
    assert result.exit_code == 0, result.output
    return path


def log_vkey(app: Flask) -> str:
    return Signer.parse(app.config["LOG_SIGNING_KEY"]).verifier().encode()


def test_bundle_verifies_offline(app: Flask, fleet: dict[str, Any], bundle: Path) -> None:  # noqa: F811
    result = cli(app, "audit", "verify", "--file", str(bundle), "--log-key", log_vkey(app),
                 "--require-witness", fleet["witness"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "11 event(s) proven in checkpoint" in result.output and "kaoshiyuan.example/witness" in result.output
    uid, events, proven = iv.verify_bundle(bundle.read_text(encoding="utf-8"), log_vkey(app), fleet["witness"])
    assert (uid, events, proven) == (uid_of(fleet["done"]), 11, 11)


def _tamper(bundle: Path, edit: Any) -> str:
    obj = json.loads(bundle.read_text(encoding="utf-8"))
    edit(obj)
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def test_tampered_bundles_fail(app: Flask, fleet: dict[str, Any], bundle: Path) -> None:  # noqa: F811
    def other_data(obj: dict) -> None:
        obj["data"]["preferences"] = {"choices": []}

    def other_proof(obj: dict) -> None:
        obj["leaves"][3]["proof"][0] = obj["leaves"][3]["proof"][1]

    def no_witness(obj: dict) -> None:
        obj["checkpoint"] = obj["checkpoint"].rsplit("\u2014 kaoshiyuan", 1)[0]

    for edit, problem in ((other_data, "differs"), (other_proof, "not in the checkpoint"),
                          (no_witness, "cosignature")):  # fmt: skip
        text = _tamper(bundle, edit)
        with pytest.raises(iv.VerifyError):
            iv.verify_bundle(text, log_vkey(app), fleet["witness"])
        path = bundle.with_suffix(".bad")
        path.write_text(text, encoding="utf-8")
        result = cli(app, "audit", "verify", "--file", str(path), "--require-witness", fleet["witness"])
        assert result.exit_code == 1 and problem in result.output, result.output
