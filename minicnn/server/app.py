"""HTTP for the explorer (in ``guards.py``)."""

from .guards import *  # noqa: F403
