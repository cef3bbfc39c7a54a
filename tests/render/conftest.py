"""Fixtures for the render tests (helpers live in render_helpers, a uniquely named module)."""

from render_helpers import joints, rendered, renderer, scene  # noqa: F401
