"""Configuration of the mock generator: every randomized range and every switch.

A :class:`MockConfig` holds the *hyper*-parameters of the generator: for each nuisance parameter
of ``docs/mocks.rst`` (the domain-randomization table of the physics note, §8) the range it is drawn
from per cluster, and the discrete model choices. A range given as ``(x, x)`` fixes the parameter;
a choice tuple with one entry fixes the model. Other generator variants (no centrals, isotropic
orbits, a single c–M relation, an idealized survey) are produced by changing these fields, e.g.
``MockConfig().replace(anisotropy_models=("const",), const_beta=(0.0, 0.0))``.

Units: masses log10(M200c / (Msun/h)); lengths in Mpc/h (physical unless named ``_com``);
velocities in km/s; stellar masses log10(M*/Msun) (h = 0.7 convention of the stellar-mass
functions used, see :mod:`astro_cnnmass.mocks.members`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import InputError

__all__ = ["MockConfig", "MockConfigError"]

#: Supported ranges of the label physics (outside these the tabulated relations are not valid).
LOG_M_LIMITS = (12.5, 16.0)
Z_LIMITS = (0.005, 0.5)

_CHOICES = {
    "cm_models": ("diemer19", "duffy08", "ishiyama21"),
    "anisotropy_models": ("ml", "tiret", "const", "om"),
    "member_velocities": ("df", "gaussian"),
    "infall_kinematics": ("stream", "mean", "none"),
    "tracer_profiles": ("nfw", "einasto"),
    "member_radius": ("r200c", "rvir", "r200m"),
    "cosmology": ("multidark-planck", "planck18", "planck15", "WMAP9", "bolshoi"),
}


class MockConfigError(InputError):
    """An invalid mock-generator configuration (unknown key, empty range, unsupported value)."""


def _r(lo: float, hi: float) -> tuple[float, float]:
    return field(default=(lo, hi))


@dataclass(frozen=True)
class MockConfig:
    """Ranges and switches of the mock generator (one instance per generator variant).

    Every ``(lo, hi)`` field is a closed range from which the parameter is drawn uniformly per
    cluster (per host for halo properties, per line of sight for observational ones), unless
    noted. Sources of each default are given in ``docs/mocks.rst`` and in the module that uses it.

    Attributes
    ----------
    log_m_range : tuple of float
        Host log10 M200c [Msun/h] range (the ``flat`` prior is uniform in it).
    z_range : tuple of float
        Cluster redshift range, drawn uniformly.
    cosmology : str
        colossus cosmology name of the mocks (default MDPL2, ``multidark-planck``).
    storage_aperture_mpch, storage_v_cut_kms : float
        Storage cylinder: galaxies with ``R < aperture`` [physical Mpc/h] and ``|v| < v_cut``
        [km/s] are stored, so that any model cylinder inside it can be cut later.
    member_radius : str
        3D radius defining a true member: ``r200c`` (default, as MBM10 and Evrard+08), ``rvir``
        or ``r200m``.
    cm_models : tuple of str
        c–M relations (colossus names) chosen at random per host.
    cm_scatter_dex : tuple
        Range of the lognormal c200c scatter σ(log10 c); the residual is drawn with it.
    f_c : tuple
        Galaxy-to-dark-matter concentration ratio c_gal / c_DM.
    tracer_profiles : tuple of str
        Galaxy number-density profile shapes (``nfw``, ``einasto``), chosen at random per host.
    einasto_alpha : tuple
        Einasto shape parameter of the galaxy profile when ``einasto`` (fixed at 0.2, the node
        of the distribution-function library, with ``member_velocities='df'``).
    truncation_r200m : tuple
        Outer truncation of the orbiting (member) population, units of R200m.
    shape_sigma : tuple
        Scatter of the minor-to-major axis ratio c/a around the Kasun & Evrard (2005) mean.
    triaxial : bool
        If False, spherical hosts with isotropic velocity ellipsoids.
    velocity_shape_exponent : tuple
        q_vel = q_pos ** exponent for both velocity axis ratios.
    misalignment_median_deg : float
        Median angle between the velocity ellipsoid and the shape principal axes.
    member_velocities : {'df', 'gaussian'}
        How the orbiting members get positions and velocities: jointly from equilibrium
        distribution functions (``df``, the default; ``astro_cnnmass.mocks.dflibrary``) or
        radii from the tracer profile and 3D Gaussian velocities with the Jeans σ_r(r)
        (``gaussian``, the generator-1.0 physics).
    anisotropy_models : tuple of str
        Velocity anisotropy β(r) models: Mamon & Łokas 2005 (``ml``), simplified Tiret
        (``tiret``), constant (``const``) and Osipkov–Merritt (``om``, DF mode only; with
        ``gaussian`` it is solved with the Jeans equation like the others).
    ml_ra_rs, tiret_beta_inf, tiret_rb_rs, const_beta, om_ra_rs : tuple
        Ranges of the anisotropy parameters (radii in units of the DM scale radius r_s).
    velocity_bias : tuple
        Galaxy velocity bias b_v = σ_gal / σ_DM.
    sigma_norm_scatter : float
        Standard deviation of the Gaussian factor N(1, s) on the velocity normalisation.
    mass_segregation_k : tuple
        Velocity reduction per dex of stellar mass above 10^10.5 Msun (dynamical friction).
    nsat_14 : float
        Mean number of satellites with M* > 10^9.5 Msun inside R200m of a 10^14 Msun/h halo.
    nsat_norm_dex, nsat_slope, nsat_scatter : tuple
        Offset of the satellite-count normalisation [dex], slope of N_sat ∝ M^α and intrinsic
        lognormal scatter σ_int (ln units) of the counts (super-Poisson).
    p_substructure, substructure_mu, p_merger : tuple
        Probability of bound infalling subgroups, their mass ratio range (log-uniform) and the
        probability of a major-merger companion.
    infall_kinematics : {'stream', 'mean', 'none'}
        Velocities of the galaxies around the host: an infalling stream released at rest at the
        turnaround radius (``stream``, default; ``astro_cnnmass.mocks.surroundings``), the
        generator-1.0 mean-infall field tapered inside the splashback radius (``mean``), or no
        infall region at all (``none``: no infall motion and no infalling-matter excess).
    infall_amplitude, x_turnaround, x_splashback : tuple
        Mean infall velocity amplitude, turnaround radius and splashback taper radius (units of
        R200c) of the ``mean`` model; with ``stream`` the turnaround radius is where the mean
        enclosed overdensity is ``turnaround_delta``, clipped to ``x_turnaround``.
    turnaround_delta : tuple
        Mean enclosed matter overdensity at turnaround (Korkidis et al. 2020, arXiv:1912.08216:
        δ ≈ 11).
    stream_amplitude : tuple
        Radial speed of the infalling stream as a fraction of free fall from rest at turnaround.
    stream_sigma : tuple
        Radial velocity dispersion of the infalling stream at R200c [V200]; it falls as
        x^-1/2 towards the field value.
    stream_sigma_t_ratio : tuple
        Tangential-to-radial dispersion ratio of the infalling stream.
    infall_inner_r200c : tuple
        Innermost 3D radius [R200c] of infalling neighbour halos and field galaxies (``stream``;
        ``mean`` uses the host's truncation radius as before).
    infall_delta1, infall_slope : tuple
        Normalisation δ1 and slope s of the infalling matter profile δ1 (r/R200m)^-s.
    field_sigma_kms : tuple
        Peculiar velocity dispersion of field galaxies far from the cluster.
    student_nu : tuple
        Degrees of freedom of the Student-t peculiar velocities of the surroundings.
    neighbour_bias : tuple
        Factor on the clustering term b(M) b(M') ξ of neighbour halos.
    field_density : tuple
        Factor on the number density of neighbour halos and field galaxies.
    uniform_fraction : tuple
        Density of the uniform (unclustered, halo-less) field as a fraction of the GAMA
        stellar-mass function density above the cut.
    n_filaments : tuple
        Range of the number of filaments (connectivity) through the host (integer, inclusive).
    filament_fraction : tuple
        Fraction of the clustered neighbour halos that lie in filaments (the rest is isotropic).
    filament_radius_mpch : tuple
        Gaussian radius of the filaments, comoving Mpc/h.
    p_centrals : float
        Probability that a cluster's galaxies include centrals (host BCG and field centrals);
        0 reproduces the satellites-only Ho et al. (2019) mocks.
    log_mstar_cut : tuple
        Survey depth: stellar-mass threshold log10(M*/Msun).
    velocity_error_kms, catastrophic_fraction : tuple
        Redshift errors (Gaussian σ, km/s) and the fraction of catastrophic redshifts.
    sampling_fraction, completeness_width_dex : tuple
        Random spectroscopic sampling and the width of the stellar-mass completeness ramp.
    fibre_collision_p : tuple
        Strength p_fc of fibre collisions (a pair closer than the fibre size loses one galaxy with
        probability 0.7 p_fc).
    targeting_aperture_mpch : tuple
        Radius of the spectroscopic targeting (physical Mpc/h, per line of sight): galaxies
        projected beyond it are not observed (a field of view or a target list limited to the
        core). The default, 10 Mpc/h, cuts nothing inside any storage aperture up to 10 Mpc/h
        (default 2.5).
    targeting_gradient : tuple
        Fall of the targeting completeness with radius, per line of sight: a galaxy at projected
        radius R inside the targeting aperture R_t is kept with (1 − g R / R_t) times the other
        completeness factors (0: uniform targeting, the default).
    fibre_angle_arcsec : float
        Fibre collision angle (SDSS: 55 arcsec).
    miscentring_fraction, miscentring_scale_r200c : tuple
        Probability of a miscentred cluster and the Gamma(2, θ) offset scale θ in R200c.
    velocity_offset_frac : tuple
        Velocity zero-point error, standard deviation in units of the true σ.
    """

    log_m_range: tuple[float, float] = _r(13.5, 15.5)
    z_range: tuple[float, float] = _r(0.01, 0.3)
    cosmology: str = "multidark-planck"
    storage_aperture_mpch: float = 2.5
    storage_v_cut_kms: float = 4000.0
    member_radius: str = "r200c"
    # host structure
    cm_models: tuple[str, ...] = ("diemer19", "duffy08", "ishiyama21")
    cm_scatter_dex: tuple[float, float] = _r(0.11, 0.16)
    f_c: tuple[float, float] = _r(0.45, 1.1)
    tracer_profiles: tuple[str, ...] = ("nfw", "einasto")
    einasto_alpha: tuple[float, float] = _r(0.2, 0.2)
    truncation_r200m: tuple[float, float] = _r(1.0, 1.5)
    shape_sigma: tuple[float, float] = _r(0.07, 0.10)
    triaxial: bool = True
    velocity_shape_exponent: tuple[float, float] = _r(0.5, 0.9)
    misalignment_median_deg: float = 20.0
    # velocities
    member_velocities: str = "df"
    anisotropy_models: tuple[str, ...] = ("ml", "tiret", "const")
    ml_ra_rs: tuple[float, float] = _r(0.5, 2.0)
    tiret_beta_inf: tuple[float, float] = _r(0.2, 0.9)
    tiret_rb_rs: tuple[float, float] = _r(0.5, 2.0)
    const_beta: tuple[float, float] = _r(-0.2, 0.5)
    om_ra_rs: tuple[float, float] = _r(0.7, 2.0)
    velocity_bias: tuple[float, float] = _r(0.92, 1.08)
    sigma_norm_scatter: float = 0.04
    mass_segregation_k: tuple[float, float] = _r(0.0, 0.05)
    # galaxy counts
    nsat_14: float = 60.0
    nsat_norm_dex: tuple[float, float] = _r(-0.2, 0.2)
    nsat_slope: tuple[float, float] = _r(0.85, 1.1)
    nsat_scatter: tuple[float, float] = _r(0.10, 0.25)
    p_substructure: tuple[float, float] = _r(0.2, 0.45)
    substructure_mu: tuple[float, float] = _r(0.03, 0.3)
    p_merger: tuple[float, float] = _r(0.0, 0.1)
    # surroundings
    infall_kinematics: str = "stream"
    turnaround_delta: tuple[float, float] = _r(8.0, 15.0)
    stream_amplitude: tuple[float, float] = _r(0.7, 1.0)
    stream_sigma: tuple[float, float] = _r(0.25, 0.45)
    stream_sigma_t_ratio: tuple[float, float] = _r(0.6, 1.0)
    infall_inner_r200c: tuple[float, float] = _r(1.0, 1.3)
    infall_amplitude: tuple[float, float] = _r(0.7, 1.2)
    x_turnaround: tuple[float, float] = _r(3.5, 5.5)
    x_splashback: tuple[float, float] = _r(1.2, 2.0)
    infall_delta1: tuple[float, float] = _r(5.0, 20.0)
    infall_slope: tuple[float, float] = _r(1.0, 2.0)
    field_sigma_kms: tuple[float, float] = _r(200.0, 350.0)
    student_nu: tuple[float, float] = _r(3.0, 10.0)
    neighbour_bias: tuple[float, float] = _r(0.8, 1.2)
    field_density: tuple[float, float] = _r(0.7, 1.3)
    uniform_fraction: tuple[float, float] = _r(0.0, 0.15)
    n_filaments: tuple[float, float] = _r(2.0, 4.0)
    filament_fraction: tuple[float, float] = _r(0.3, 0.7)
    filament_radius_mpch: tuple[float, float] = _r(1.0, 2.5)
    p_centrals: float = 0.5
    # observation
    log_mstar_cut: tuple[float, float] = _r(9.3, 10.0)
    velocity_error_kms: tuple[float, float] = _r(15.0, 60.0)
    catastrophic_fraction: tuple[float, float] = _r(0.0, 0.01)
    sampling_fraction: tuple[float, float] = _r(0.5, 1.0)
    completeness_width_dex: tuple[float, float] = _r(0.0, 0.3)
    fibre_collision_p: tuple[float, float] = _r(0.0, 1.0)
    targeting_aperture_mpch: tuple[float, float] = _r(10.0, 10.0)
    targeting_gradient: tuple[float, float] = _r(0.0, 0.0)
    fibre_angle_arcsec: float = 55.0
    miscentring_fraction: tuple[float, float] = _r(0.0, 0.3)
    miscentring_scale_r200c: tuple[float, float] = _r(0.05, 0.25)
    velocity_offset_frac: tuple[float, float] = _r(0.0, 0.3)

    def __post_init__(self) -> None:
        # normalise list inputs (from JSON/YAML) to tuples, then validate
        for f in dataclasses.fields(self):
            val = getattr(self, f.name)
            if isinstance(val, list):
                object.__setattr__(self, f.name, tuple(val))
        self.validate()

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> MockConfig:
        """Build a configuration from a mapping; unknown keys raise :class:`MockConfigError`."""
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise MockConfigError(
                f"unknown MockConfig parameter(s) {unknown}; valid names are {sorted(names)}"
            )
        return cls(**d)

    def replace(self, **changes: Any) -> MockConfig:
        """A copy with some fields changed (unknown names raise :class:`MockConfigError`)."""
        return MockConfig.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary (lists for ranges), suitable for YAML/JSON/ASDF metadata."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            val = getattr(self, f.name)
            out[f.name] = list(val) if isinstance(val, tuple) else val
        return out

    @classmethod
    def ho2019(cls) -> MockConfig:
        """Closest analogue of the Ho et al. (2019) MDPL2+UniverseMachine mocks.

        Satellites only (no centrals), z = 0.117, M* > 10^9.5 Msun, no observational effects
        (no velocity errors, complete sampling, no fibre collisions, perfect centring).
        """
        return cls(
            z_range=(0.117, 0.117),
            p_centrals=0.0,
            log_mstar_cut=(9.5, 9.5),
            velocity_error_kms=(0.0, 0.0),
            catastrophic_fraction=(0.0, 0.0),
            sampling_fraction=(1.0, 1.0),
            completeness_width_dex=(0.0, 0.0),
            fibre_collision_p=(0.0, 0.0),
            miscentring_fraction=(0.0, 0.0),
            velocity_offset_frac=(0.0, 0.0),
        )

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise :class:`MockConfigError` naming the first invalid field."""
        for f in dataclasses.fields(self):
            name, val = f.name, getattr(self, f.name)
            if name in _CHOICES:
                allowed = _CHOICES[name]
                vals = (val,) if isinstance(val, str) else val
                if not isinstance(vals, tuple) or len(vals) == 0:
                    raise MockConfigError(f"{name} must be a non-empty tuple of {allowed}")
                bad = [v for v in vals if v not in allowed]
                if bad:
                    raise MockConfigError(f"{name}: unknown value(s) {bad}; allowed {allowed}")
            elif isinstance(f.default, tuple) and len(f.default) == 2:
                if not (isinstance(val, tuple) and len(val) == 2):
                    raise MockConfigError(f"{name} must be a (lo, hi) pair, got {val!r}")
                lo, hi = val
                if not all(isinstance(x, int | float) and math.isfinite(x) for x in val):
                    raise MockConfigError(f"{name} must hold finite numbers, got {val!r}")
                if lo > hi:
                    raise MockConfigError(f"{name} is an empty range: lo={lo} > hi={hi}")
        lo, hi = self.log_m_range
        if lo < LOG_M_LIMITS[0] or hi > LOG_M_LIMITS[1]:
            raise MockConfigError(
                f"log_m_range {self.log_m_range} outside the supported {LOG_M_LIMITS} "
                "(log10 M200c in Msun/h; masses must be positive and given as log10)"
            )
        lo, hi = self.z_range
        if lo < Z_LIMITS[0] or hi > Z_LIMITS[1]:
            raise MockConfigError(f"z_range {self.z_range} outside the supported {Z_LIMITS}")
        positive = ("storage_aperture_mpch", "storage_v_cut_kms", "nsat_14", "fibre_angle_arcsec")
        for name in positive:
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise MockConfigError(f"{name} must be a positive number, got {v!r}")
        unit_ranges = (
            "p_substructure",
            "p_merger",
            "sampling_fraction",
            "fibre_collision_p",
            "targeting_gradient",
            "miscentring_fraction",
            "catastrophic_fraction",
        )
        for name in unit_ranges:
            lo, hi = getattr(self, name)
            if lo < 0 or hi > 1:
                raise MockConfigError(f"{name} must lie in [0, 1], got {(lo, hi)}")
        if self.sampling_fraction[0] <= 0:
            raise MockConfigError("sampling_fraction must be > 0")
        if not 0 <= self.p_centrals <= 1:
            raise MockConfigError(f"p_centrals must lie in [0, 1], got {self.p_centrals}")
        if self.sigma_norm_scatter < 0 or self.misalignment_median_deg < 0:
            raise MockConfigError("sigma_norm_scatter and misalignment_median_deg must be >= 0")
        strictly_positive = (
            "cm_scatter_dex", "f_c", "einasto_alpha", "truncation_r200m", "ml_ra_rs",
            "tiret_rb_rs", "velocity_bias", "nsat_slope", "substructure_mu", "infall_amplitude",
            "x_turnaround", "x_splashback", "infall_delta1", "infall_slope", "field_sigma_kms",
            "neighbour_bias", "field_density", "filament_radius_mpch", "om_ra_rs",
            "turnaround_delta", "stream_amplitude", "stream_sigma_t_ratio",
            "targeting_aperture_mpch",
        )  # fmt: skip
        for name in strictly_positive:
            if getattr(self, name)[0] <= 0:
                raise MockConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        nonneg = (
            "shape_sigma", "velocity_shape_exponent", "nsat_scatter", "uniform_fraction",
            "velocity_error_kms", "completeness_width_dex", "miscentring_scale_r200c",
            "velocity_offset_frac", "mass_segregation_k", "stream_sigma",
        )  # fmt: skip
        for name in nonneg:
            if getattr(self, name)[0] < 0:
                raise MockConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.filament_fraction[0] <= self.filament_fraction[1] <= 1:
            raise MockConfigError("filament_fraction must lie in [0, 1]")
        if self.n_filaments[0] < 0 or self.n_filaments[1] > 10:
            raise MockConfigError("n_filaments must lie in [0, 10]")
        if self.student_nu[0] <= 2:
            raise MockConfigError("student_nu must be > 2 (finite variance)")
        if self.infall_inner_r200c[0] < 1.0:
            raise MockConfigError("infall_inner_r200c must be >= 1 (units of R200c)")
        if self.x_splashback[0] <= 1:
            raise MockConfigError("x_splashback must be > 1 (units of R200c)")
        if not (-1.0 <= self.const_beta[0] and self.const_beta[1] < 1.0):
            raise MockConfigError("const_beta must lie in [-1, 1)")
        if not (0 <= self.tiret_beta_inf[0] and self.tiret_beta_inf[1] < 1.0):
            raise MockConfigError("tiret_beta_inf must lie in [0, 1)")
        if not 8.0 <= self.log_mstar_cut[0] <= self.log_mstar_cut[1] <= 11.5:
            raise MockConfigError("log_mstar_cut must lie in [8, 11.5] (log10 Msun)")
