"""Uncertainty and domain checks: interval calibration, priors, every out-of-domain model.

* :mod:`~astro_cnnmass.uncertainty.calibration` -- the std scale fitted on validation clusters;
* :mod:`~astro_cnnmass.uncertainty.priors` -- the mass-function prior (posterior reweighting);
* :mod:`~astro_cnnmass.uncertainty.ood` -- embedding and image out-of-domain models, the
  combined score;
* :mod:`~astro_cnnmass.uncertainty.summary_ood` -- the phase-space summary model.
"""

from .calibration import (
    QUANTILE_LEVELS,
    calibration_mass_range,
    fit_std_calibration,
    gaussian_quantiles,
)
from .ood import (
    embeddings,
    fit_image_ood_model,
    fit_ood_model,
    normalized_ood_scores,
    ood_score_components,
    ood_scores,
    ood_threshold,
)
from .priors import (
    log_mass_function,
    posterior_quantiles,
    posterior_samples,
    reweight_to_mass_function,
    reweighted_quantiles,
)
from .summary_ood import fit_summary_ood_model, phase_space_summaries, summary_distances

__all__ = [
    "QUANTILE_LEVELS",
    "calibration_mass_range",
    "embeddings",
    "fit_image_ood_model",
    "fit_ood_model",
    "fit_std_calibration",
    "fit_summary_ood_model",
    "gaussian_quantiles",
    "log_mass_function",
    "normalized_ood_scores",
    "ood_score_components",
    "ood_scores",
    "ood_threshold",
    "phase_space_summaries",
    "posterior_quantiles",
    "posterior_samples",
    "reweight_to_mass_function",
    "reweighted_quantiles",
    "summary_distances",
]
