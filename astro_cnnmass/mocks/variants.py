"""Named generator variants: other, equally defensible physics choices for robustness tests.

Each entry of `GENERATOR_VARIANTS` is a set of `~astro_cnnmass.mocks.MockConfig` overrides;
``MockConfig().replace(**GENERATOR_VARIANTS[name])`` builds it. The bundled model was never
trained on them; its model card reports its accuracy on each (``scripts/build_default_model.py``,
re-measured by ``benchmarks/accuracy.py --variant NAME``). `VARIANT_SEED_OFFSETS` are the seed
offsets (added to the build seed) of the catalogues behind those figures.
"""

from __future__ import annotations

from .config import MockConfig, MockConfigError

__all__ = [
    "GENERATOR_VARIANTS",
    "PRESETS",
    "TRAINING_OVERRIDES",
    "VARIANT_SEED_OFFSETS",
    "preset_config",
]

#: Overrides of the default generator for the bundled model's training mocks.
#:
#: * Survey depth (the stellar-mass limit of the spectroscopic sample) and sampling completeness
#:   vary widely between surveys and with redshift (SDSS main sample, r < 17.77: about
#:   10^9.5 Msun at z = 0.05 and 10^10.8 at z = 0.2; Strauss et al. 2002,
#:   arXiv:astro-ph/0206225), so the training set spans them broadly and the network cannot lean
#:   on one survey's richness-mass relation.
#: * Targeting (model v3): how far out a survey targets and how its completeness falls with
#:   radius differ from survey to survey (``astro_cnnmass.mocks.observe``); the training set
#:   spans targeting radii of 0.5–4 physical Mpc/h and completeness gradients of 0–0.7, so the
#:   network cannot read the radial profile of the observed galaxies as mass (the
#:   ``central_targeting`` variant measures what a model trained without it does).
#: * Infall strength (model v3): the infalling density term of N-body haloes scatters by up to
#:   1 dex from halo to halo (Diemer 2022, arXiv:2112.03921), and the default range of its
#:   normalisation (δ1 ∈ [5, 20], 0.6 dex) leaves the cylinders cooler relative to their members
#:   than N-body interloper fits (docs/mocks.rst, K3), so the training set spans δ1 ∈ [5, 40].
TRAINING_OVERRIDES: dict = {
    "log_mstar_cut": (8.9, 10.5),
    "sampling_fraction": (0.3, 1.0),
    "targeting_aperture_mpch": (0.5, 4.0),
    "targeting_gradient": (0.0, 0.7),
    "infall_delta1": (5.0, 40.0),
}

GENERATOR_VARIANTS: dict[str, dict] = {
    # Ho et al. 2019 (arXiv:1902.05950)-like selection: satellites only (no field or cluster
    # centrals), one redshift near their snapshot (z = 0.117).
    "ho_like": {"p_centrals": 0.0, "z_range": (0.11, 0.125)},
    # Galaxies trace an isotropic, spherical NFW halo (the GCMRP idealised mocks, Old et al.
    # 2014, arXiv:1403.4610).
    "isotropic_spherical": {
        "anisotropy_models": ("const",),
        "const_beta": (0.0, 0.0),
        "triaxial": False,
        "tracer_profiles": ("nfw",),
        "f_c": (1.0, 1.0),
    },
    # Deep and shallow spectroscopic surveys, at the deep end and inside the training range.
    "deep_survey": {"log_mstar_cut": (8.8, 9.3)},
    "shallow_survey": {"log_mstar_cut": (10.0, 10.4)},
    # Shallower than anything in the training set: an extrapolation test.
    "very_shallow_survey": {"log_mstar_cut": (10.8, 11.1)},
    # A denser field and stronger clustering of interlopers.
    "crowded_field": {"field_density": (1.3, 1.6), "neighbour_bias": (1.2, 1.4)},
    # ---- kinematics variants (issue 12): orbits, velocity distributions and dynamical state the
    # default (generator 2.0) was not trained on.
    # Strongly radial orbits: pure Osipkov–Merritt DFs with a small anisotropy radius, β → 1
    # outside ≈ r_s (the radial end of ML05/MBM10 and Biviano et al. 2026 β ≳ 0.8 at r_vir).
    "radial_orbits": {"anisotropy_models": ("om",), "om_ra_rs": (0.7, 1.0)},
    # Tangential orbits: constant β ∈ [−0.5, −0.3] (Cuddeford/An–Evans DFs of NFW tracers).
    "tangential_orbits": {
        "anisotropy_models": ("const",),
        "const_beta": (-0.5, -0.3),
        "tracer_profiles": ("nfw",),
    },
    # The generator-1.0 kinematics: Jeans σ_r(r) with 3D Gaussian member velocities, the
    # all-matter mean infall field tapered inside the splashback radius, random subgroup and
    # merger velocities, Einasto α randomized.
    "gaussian_velocities": {
        "member_velocities": "gaussian",
        "infall_kinematics": "mean",
        "einasto_alpha": (0.16, 0.30),
    },
    # No infall region: no infall motion and no infalling-matter excess around the host (only
    # linear clustering, Hubble flow and field dispersion).
    "no_infall": {"infall_kinematics": "none"},
    # Strong infall: dense infall region, full free-fall speed, infalling galaxies reaching
    # R200c.
    "strong_infall": {
        "infall_delta1": (20.0, 40.0),
        "stream_amplitude": (1.0, 1.0),
        "infall_inner_r200c": (1.0, 1.0),
        "turnaround_delta": (8.0, 9.0),
    },
    # Merger-rich: most hosts have infalling subgroups and a third to a half a major-merger
    # companion (the default follows §4.6: p_sub ∈ [0.2, 0.45], p_merger ∈ [0, 0.1]).
    "merger_rich": {"p_substructure": (0.6, 0.9), "p_merger": (0.3, 0.5)},
    # ---- targeting: a survey that observes only the core (targeting radius 0.6–1.2 physical
    # Mpc/h, inside the model's 1.6 Mpc/h cylinder) with completeness falling by 30–70 % out to
    # that radius (``astro_cnnmass.mocks.observe``).
    "central_targeting": {"targeting_aperture_mpch": (0.6, 1.2), "targeting_gradient": (0.3, 0.7)},
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
    "radial_orbits": 106,
    "tangential_orbits": 107,
    "gaussian_velocities": 108,
    "no_infall": 109,
    "strong_infall": 110,
    "merger_rich": 111,
    "central_targeting": 112,
}

#: Named starting configurations (``astro-cnnmass mocks --preset``,
#: ``benchmarks/validate_mocks.py --config``): the default generator, the Ho et al. (2019)
#: analogue, the bundled model's training set and every generator variant.
PRESETS: tuple[str, ...] = ("default", "ho2019", "training", *GENERATOR_VARIANTS)


def preset_config(name: str) -> MockConfig:
    """The configuration named ``name`` (one of `PRESETS`).

    Raises
    ------
    MockConfigError
        For a name that is not in `PRESETS`.
    """
    if name == "default":
        return MockConfig()
    if name == "ho2019":
        return MockConfig.ho2019()
    if name == "training":
        return MockConfig().replace(**TRAINING_OVERRIDES)
    if name in GENERATOR_VARIANTS:
        return MockConfig().replace(**GENERATOR_VARIANTS[name])
    raise MockConfigError(f"unknown preset {name!r}; known: {list(PRESETS)}")
