"""The one feature builder: batched KDE images of projected phase space (numpy and torch).

* :mod:`~astro_cnnmass.features.config` --
  :class:`~astro_cnnmass.features.config.FeatureConfig` (grid, kernel, cylinder) and
  :func:`~astro_cnnmass.features.config.pack` (per-cluster arrays -> the flat form);
* :mod:`~astro_cnnmass.features.kde` -- :func:`~astro_cnnmass.features.kde.kde_images` /
  :func:`~astro_cnnmass.features.kde.kde_image`.
"""

from .config import FeatureConfig, pack
from .kde import kde_image, kde_images

__all__ = ["FeatureConfig", "kde_image", "kde_images", "pack"]
