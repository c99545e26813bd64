"""A tool a test needs and the host lacks: skip on a workstation, fail in CI (which installs it)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True under CI: .ci/run and the usual CI services set ``CI`` (``true``, ``1``)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def missing(reason: str) -> NoReturn:
    """Skip with ``reason`` here; in CI, fail with it: a test that always skips there tests nothing."""
    if in_ci():
        pytest.fail(f"{reason}; CI installs it, so its absence is an error (.ci/run)")
    pytest.skip(reason)
