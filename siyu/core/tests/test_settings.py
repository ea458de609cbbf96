"""Settings refuse unsafe or malformed configuration at start-up."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from siyu.config.env import database_from_url, env_bool, env_int


def _import_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SIYU_", "SECRET_KEY"))}
    clean.pop("DATABASE_URL", None)
    clean.pop("DEBUG", None)
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", "import siyu.config.settings as s; print(s.DEBUG)"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = _import_settings(SIYU_ENV="production")
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production" in result.stderr


def test_production_needs_an_encryption_key_and_a_broker() -> None:
    result = _import_settings(SIYU_ENV="production", SECRET_KEY="k" * 50)
    assert "SIYU_ENCRYPTION_KEY must be set" in result.stderr
    result = _import_settings(
        SIYU_ENV="production", SECRET_KEY="k" * 50, SIYU_ENCRYPTION_KEY="e" * 40
    )
    assert "CELERY_BROKER_URL must be set" in result.stderr


def test_debug_is_off_unless_asked_for() -> None:
    assert _import_settings(SIYU_ENV="development").stdout.strip() == "False"
    assert _import_settings(SIYU_ENV="development", DEBUG="true").stdout.strip() == "True"


def test_secrets_can_come_from_files(tmp_path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", "import siyu.config.settings as s; print(s.SECRET_KEY)"],
        env={**os.environ, "SIYU_ENV": "development", "SECRET_KEY_FILE": str(secret)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == "from-a-file"


def test_malformed_values_name_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env_bool("X_FLAG")
    monkeypatch.setenv("X_NUM", "ten")
    with pytest.raises(ImproperlyConfigured, match="X_NUM"):
        env_int("X_NUM", 1)
    with pytest.raises(ImproperlyConfigured, match="mysql"):
        database_from_url("mysql://x/y", base_dir=__import__("pathlib").Path("/"))


def test_database_urls_are_parsed() -> None:
    from pathlib import Path

    pg = database_from_url(
        "postgres://u:p%40ss@db.example:6543/siyu?sslmode=require", base_dir=Path("/")
    )
    assert (pg["NAME"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"]) == (
        "siyu",
        "u",
        "p@ss",
        "db.example",
        "6543",
    )
    assert pg["OPTIONS"] == {"sslmode": "require"}
    lite = database_from_url("sqlite:///var/x.db", base_dir=Path("/srv/siyu"))
    assert lite["NAME"] == "/srv/siyu/var/x.db"
