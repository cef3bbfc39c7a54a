"""Fixtures for the recon tests (helpers live in recon_helpers, a uniquely named module)."""

from recon_helpers import _one_torch_thread, standin  # noqa: F401
