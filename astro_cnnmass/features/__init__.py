"""The one feature builder: batched KDE images of projected phase space (numpy and torch).

* :mod:`~astro_cnnmass.features.config` -- :class:`FeatureConfig` (grid, kernel, cylinder) and
  :func:`pack` (per-cluster arrays -> the flat form);
* :mod:`~astro_cnnmass.features.kde` -- :func:`kde_images` / :func:`kde_image`.
"""

from .config import FeatureConfig, pack
from .kde import kde_image, kde_images

__all__ = ["FeatureConfig", "kde_image", "kde_images", "pack"]
