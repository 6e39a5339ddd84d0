"""Figures of explanations: overlays with colour bars, gradient images, panel grids (in ``panels.py``)."""

from .panels import *  # noqa: F403
