"""Helpers shared by the format tests."""

from __future__ import annotations

from sidecar.record import RawRequest


def set_fields(r: RawRequest) -> dict:
    """The fields a format set on `r` (those not None), by name."""
    return {n: getattr(r, n) for n in RawRequest.__slots__ if getattr(r, n) is not None}
