"""Named generator variants: other, equally defensible physics choices for robustness tests.

Each entry of `GENERATOR_VARIANTS` is a set of `~astro_cnnmass.mocks.MockConfig` overrides;
``MockConfig().replace(**GENERATOR_VARIANTS[name])`` builds it. The bundled model was never
trained on them; its model card reports its accuracy on each (``scripts/build_default_model.py``,
re-measured by ``benchmarks/accuracy.py --variant NAME``). `VARIANT_SEED_OFFSETS` are the seed
offsets (added to the build seed) of the catalogues behind those figures.
"""

from __future__ import annotations

__all__ = ["GENERATOR_VARIANTS", "TRAINING_OVERRIDES", "VARIANT_SEED_OFFSETS"]

#: Overrides of the default generator for the bundled model's training mocks: survey depth (the
#: stellar-mass limit of the spectroscopic sample) and sampling completeness vary widely between
#: surveys and with redshift (SDSS main sample, r < 17.77: about 10^9.5 Msun at z = 0.05 and
#: 10^10.8 at z = 0.2; Strauss et al. 2002, arXiv:astro-ph/0206225), so the training set spans
#: them broadly and the network cannot lean on one survey's richness-mass relation.
TRAINING_OVERRIDES: dict = {"log_mstar_cut": (8.9, 10.5), "sampling_fraction": (0.3, 1.0)}

GENERATOR_VARIANTS: dict[str, dict] = {
    # Ho et al. 2019 (arXiv:1902.05950)-like selection: satellites only (no field or cluster
    # centrals), one redshift near their snapshot (z = 0.117).
    "ho_like": {"p_centrals": 0.0, "z_range": (0.11, 0.125)},
    # Galaxies trace an isotropic, spherical NFW halo (the GCMRP idealised mocks, Old et al.
    # 2014, arXiv:1403.4610).
    "isotropic_spherical": {
        "anisotropy_models": ("const",), "const_beta": (0.0, 0.0), "triaxial": False,
        "tracer_profiles": ("nfw",), "f_c": (1.0, 1.0),
    },
    # Deep and shallow spectroscopic surveys, at the deep end and inside the training range.
    "deep_survey": {"log_mstar_cut": (8.8, 9.3)},
    "shallow_survey": {"log_mstar_cut": (10.0, 10.4)},
    # Shallower than anything in the training set: an extrapolation test.
    "very_shallow_survey": {"log_mstar_cut": (10.8, 11.1)},
    # A denser field and stronger clustering of interlopers.
    "crowded_field": {"field_density": (1.3, 1.6), "neighbour_bias": (1.2, 1.4)},
}

#: Seed offsets of the variant catalogues in the model card (the same offset twice is harmless:
#: the configurations differ).
VARIANT_SEED_OFFSETS: dict[str, int] = {
    "ho_like": 100,
    "isotropic_spherical": 101,
    "deep_survey": 102,
    "shallow_survey": 103,
    "very_shallow_survey": 104,
    "crowded_field": 104,
}
