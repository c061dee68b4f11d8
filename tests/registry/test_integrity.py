"""Integrity of every registered package: each kind of tampering is refused wherever a version is loaded or moved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks.registry import lifecycle, tracking
from tasks.registry.fetch import MANIFEST_TAG, load_verified
from tasks.registry.promotion import infra_check, promote_version
from tasks.registry.promotion_settings import PromotionSettings
from tasks.serving.package import IntegrityError
from tests.registry.store import NAME, model_folder

pytestmark = pytest.mark.slow

SETTINGS = PromotionSettings(slice_columns=("island", "sex"), champion_margin=0.01)


def package(home: Path, version: str) -> Path:
    return model_folder(home, version) / "artifacts" / "package"


def swap_first_two_classes(path: Path, where: Callable[[dict], dict]) -> None:
    data = json.loads(path.read_text())
    classes = where(data)["classes"]
    classes[0], classes[1] = classes[1], classes[0]
    path.write_text(json.dumps(data, indent=1))


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def rewrite_manifest(folder: Path) -> None:
    """The attacker also updates the manifest: only the registry's digest can tell."""
    from tasks.serving.package import write_manifest

    write_manifest(folder)


TAMPERING: dict[str, Callable[[Path], None]] = {
    "model.tflite edited": lambda f: flip_a_byte(f / "model.tflite"),
    "preprocessor.json classes swapped": lambda f: swap_first_two_classes(f / "preprocessor.json", lambda d: d["schema"]),
    "model_meta.json classes swapped": lambda f: swap_first_two_classes(f / "model_meta.json", lambda d: d),
    "file added": lambda f: (f / "extra.py").write_text("print('not shipped')\n"),
    "file missing": lambda f: (f / "model_meta.json").unlink(),
    "manifest missing": lambda f: (f / "manifest.json").unlink(),
    "manifest rewritten to match an edit": lambda f: (
        swap_first_two_classes(f / "model_meta.json", lambda d: d),
        rewrite_manifest(f),
    ),
}
EXPECTED = {
    "model.tflite edited": "model.tflite",
    "preprocessor.json classes swapped": "preprocessor.json",
    "model_meta.json classes swapped": "model_meta.json",
    "file added": "extra.py",
    "file missing": "model_meta.json",
    "manifest missing": "re-run `pmf run`",
    "manifest rewritten to match an edit": "registered manifest digest",
}


def production() -> str | None:
    return lifecycle.alias_version(NAME, lifecycle.PRODUCTION)


@pytest.mark.parametrize("kind", list(TAMPERING))
def test_a_tampered_package_is_refused_by_load_infra_check_promote_and_rollback(own_store, kind):
    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "first")
    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "2", "second")
    TAMPERING[kind](package(own_store, "1"))
    TAMPERING[kind](package(own_store, "3"))
    history_before = lifecycle.history(NAME)

    with tempfile.TemporaryDirectory() as tmp, pytest.raises(IntegrityError, match=EXPECTED[kind].replace("`", ".")):
        load_verified(NAME, "3", Path(tmp))  # what the server and the champion gate load through

    report = infra_check(NAME, "3", SETTINGS)
    assert not report.passed, report.reasons
    assert any(EXPECTED[kind] in reason for reason in report.reasons), report.reasons

    for force in (False, True):  # --force never overrides integrity
        result = promote_version(NAME, "3", "production", SETTINGS, force=force)
        assert not result["promoted"], result["reasons"]
        assert any(EXPECTED[kind] in r for r in result["reasons"]), result["reasons"]
        assert result["aliases"] == {"candidate": "3", "production": "2"}

    with pytest.raises(IntegrityError, match=EXPECTED[kind].replace("`", ".")):
        lifecycle.rollback(NAME)  # back to v1, tampered
    with pytest.raises(IntegrityError):
        lifecycle.rollback(NAME, to_version="3")
    with pytest.raises(IntegrityError):
        lifecycle.move_alias(NAME, lifecycle.STAGING, "3", "any move verifies first")
    assert production() == "2"
    assert lifecycle.aliases(NAME) == {"candidate": "3", "production": "2"}
    assert lifecycle.history(NAME) == history_before  # no record of a refused move


@pytest.mark.parametrize("kind", [k for k in TAMPERING if k != "manifest rewritten to match an edit"])
def test_the_pyfunc_refuses_a_package_that_does_not_match_the_manifest_it_carries(own_store, kind):
    import mlflow.pyfunc

    folder = model_folder(own_store, "3")
    assert mlflow.pyfunc.load_model(str(folder)) is not None  # untouched: loads
    TAMPERING[kind](folder / "artifacts" / "package")
    with pytest.raises(IntegrityError, match=EXPECTED[kind].replace("`", ".")):
        mlflow.pyfunc.load_model(str(folder))


def test_a_version_registered_without_a_manifest_is_refused_with_the_way_out(store):
    tracking.client().delete_model_version_tag(NAME, "3", MANIFEST_TAG)
    with tempfile.TemporaryDirectory() as tmp, pytest.raises(IntegrityError, match=r"re-run `pmf run` for it"):
        load_verified(NAME, "3", Path(tmp))
    result = promote_version(NAME, "3", "staging", SETTINGS, force=True)
    assert not result["promoted"]
    assert any("re-run `pmf run`" in r for r in result["reasons"])
    assert lifecycle.aliases(NAME) == {"candidate": "3"}


def pmf(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=300, env=os.environ.copy()
    )


def test_rollback_and_forced_promote_from_the_command_line_refuse_a_tampered_version(own_store):
    for version in ("1", "2"):
        lifecycle.move_alias(NAME, lifecycle.PRODUCTION, version, f"promote {version}")
    TAMPERING["model_meta.json classes swapped"](package(own_store, "1"))
    TAMPERING["file added"](package(own_store, "3"))
    before = (lifecycle.aliases(NAME), lifecycle.history(NAME))

    for args in (
        ("rollback", NAME),
        ("rollback", NAME, "--to", "1"),
        ("promote", NAME, "--version", "3", "--to", "production", "--force"),
    ):
        done = pmf(*args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "does not match" in done.stdout + done.stderr or "not in the manifest" in done.stdout + done.stderr, done
        assert "Traceback" not in done.stderr
    assert (lifecycle.aliases(NAME), lifecycle.history(NAME)) == before


def test_one_promotion_downloads_each_version_once(store, monkeypatch):
    from tasks.registry import fetch

    lifecycle.move_alias(NAME, lifecycle.PRODUCTION, "1", "champion")
    downloads: list[str] = []
    real = fetch.download_package

    def counted(name: str, version: str, destination: Path) -> Path:
        downloads.append(str(version))
        return real(name, version, destination)

    monkeypatch.setattr(fetch, "download_package", counted)
    result = promote_version(NAME, "3", "production", SETTINGS)
    assert result["promoted"], result["reasons"]
    assert sorted(downloads) == ["1", "3"]  # candidate and champion, once each, in this process
