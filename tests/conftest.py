"""Shared fixtures: where the shared test data lives, the country databases, a pipe runner.

Test data under ../shared/testdata/ is read in place, never copied into the project.
A component a test needs and cannot find fails the test loudly; it is never skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from sidecar import config as config_mod

# Shared machines are noisy: no per-example deadline; a fixed, reproducible example budget.
settings.register_profile(
    "sidecar", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("sidecar")

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared" / "testdata"
GEOIP = SHARED / "geoip"
MATOMO_LOGS = SHARED / "access-logs" / "matomo"
COUNTRY_TEST_DB = GEOIP / "GeoIP2-Country-Test.mmdb"
EMBEDDED_DB = PROJECT / "data" / "country.mmdb"


def pytest_configure(config: pytest.Config) -> None:
    if not SHARED.is_dir():
        raise pytest.UsageError(f"shared test data not found at {SHARED} (../shared/testdata)")


def make_config(**sections: dict[str, Any]) -> config_mod.Config:
    """A Config from sections, checked like a file: make_config(ip={"ipv4_prefix_bits": 16})."""
    sections.setdefault("geoip", {}).setdefault("database", str(COUNTRY_TEST_DB))
    return config_mod.from_mapping(sections, where="(test)")


@pytest.fixture(scope="session")
def embedded_db() -> Path:
    """The embedded country database, built by `sidecar geoip build` in the test setup."""
    if not EMBEDDED_DB.is_file():
        pytest.fail(
            f"{EMBEDDED_DB} is missing: the test setup (tests/setup.sh) builds it with "
            "`sidecar geoip build` from Debian's tor-geoipdb"
        )
    return EMBEDDED_DB


def run_sidecar(
    *args: str, input: bytes | None = None, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`python -m sidecar ARGS` with bytes in and out; never raises on a non-zero exit."""
    env = {**os.environ, "PYTHONWARNINGS": "error::ResourceWarning"}
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=cwd or PROJECT,
        env=env,
        check=False,
    )
