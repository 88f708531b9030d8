"""Outside development the app and the worker refuse to start on any development default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gzsb.app import create_app
from gzsb.config import DEV_DEFAULTS, ROOT, Config, TestConfig, insecure_defaults
from gzsb.errors import ConfigurationError

SECRETS = {"SECRET_KEY", "DATA_KEY", "INDEX_KEY", "HISTORY_KEY", "PAYMENT_SIGN_KEY", "FORM_KEY", "OTP_KEY"}


def _production(**settings: str) -> type:
    return type("Prod", (Config,), {"ENV": "production", **settings})


def test_every_secret_and_url_default_is_marked() -> None:
    assert SECRETS | {"PUBLIC_BASE_URL", "LOG_SIGNING_KEY", "WITNESS_KEY"} <= set(DEV_DEFAULTS)
    # Every default that says so in its value is marked: a new one cannot be forgotten.
    unmarked = [n for n, v in vars(Config).items() if isinstance(v, str) and "dev-only" in v and n not in DEV_DEFAULTS]
    assert not unmarked


def test_production_with_default_keys_is_refused_naming_them() -> None:
    with pytest.raises(ConfigurationError) as refused:
        create_app(_production())
    for name in SECRETS | {"PUBLIC_BASE_URL", "LOG_SIGNING_KEY", "WITNESS_KEY"}:
        assert name in str(refused.value)


def test_one_forgotten_key_is_enough_and_named() -> None:
    settings = {name: f"real-{name}" for name in DEV_DEFAULTS}
    assert insecure_defaults(_production(**settings)) == []
    del settings["PAYMENT_SIGN_KEY"]
    with pytest.raises(ConfigurationError, match="PAYMENT_SIGN_KEY") as refused:
        create_app(_production(**settings))
    assert "SECRET_KEY" not in str(refused.value)


def test_development_is_said_explicitly() -> None:
    assert insecure_defaults(TestConfig) == []
    assert insecure_defaults({"ENV": "development"}) == []
    assert insecure_defaults({}) == sorted(DEV_DEFAULTS)  # no ENV at all: production


def _run(code: str, env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in DEV_DEFAULTS and k != "GZSB_ENV"}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_worker_refuses_at_import_outside_development(tmp_path: Path) -> None:
    env = {"GZSB_INSTANCE": str(tmp_path)}
    refused = _run("import gzsb.worker.tasks", env)
    assert refused.returncode != 0
    assert "SECRET_KEY" in refused.stderr and "ConfigurationError" in refused.stderr
    allowed = _run("import gzsb.worker.tasks", {**env, "GZSB_ENV": "development"})
    assert allowed.returncode == 0, allowed.stderr


def test_make_run_is_development_on_localhost() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "run: export GZSB_ENV := development" in makefile
    assert "0.0.0.0" not in makefile and "-b 127.0.0.1:$(PORT)" in makefile
