"""The model: networks, the ASDF model bundle, the predictor, training, evaluation, metrics.

Handed on here (light, no training code):

* :mod:`~astro_cnnmass.model.networks` -- CNN_1D / CNN_2D built from a config dict;
* :mod:`~astro_cnnmass.model.bundle` -- :class:`~astro_cnnmass.model.bundle.ModelBundle`, the
  ASDF model file;
* :mod:`~astro_cnnmass.model.predictor` --
  :class:`~astro_cnnmass.model.predictor.Predictor`, batched ensemble inference;
* :mod:`~astro_cnnmass.model.metrics` -- residual statistics and interval coverage.

Imported on demand (they pull the training machinery):

* :mod:`~astro_cnnmass.model.splits` -- splits by host, the flat-mass sample;
* :mod:`~astro_cnnmass.model.samples` -- mock catalogue -> cylinder -> KDE images;
* :mod:`~astro_cnnmass.model.training` -- :func:`~astro_cnnmass.model.training.train_model`;
* :mod:`~astro_cnnmass.model.calibrate` -- interval calibration and out-of-domain fits;
* :mod:`~astro_cnnmass.model.evaluation` -- held-out evaluation beside M–σ;
* :mod:`~astro_cnnmass.model.commands` -- the ``train`` and ``evaluate`` sub-commands.
"""

from .bundle import ModelBundle, ModelFileError, bundled_model_path, untrained_bundle
from .metrics import binned_residuals, interval_coverage, pit_histogram, pit_values, residual_stats
from .networks import CNNMassNet, build_network, default_network_config
from .predictor import Predictor

__all__ = [
    "CNNMassNet",
    "ModelBundle",
    "ModelFileError",
    "Predictor",
    "binned_residuals",
    "build_network",
    "bundled_model_path",
    "default_network_config",
    "interval_coverage",
    "pit_histogram",
    "pit_values",
    "residual_stats",
    "untrained_bundle",
]
