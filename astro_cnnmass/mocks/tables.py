"""Per-process tables of the expensive cosmological functions (computed once with colossus).

colossus (Diemer 2018, ApJS 239, 35; arXiv:1712.04512) provides the cosmology, the halo mass
function, the concentration–mass relations, the halo bias and the linear correlation function.
Its global cosmology is set here with ``persistence=''`` so that nothing is written to disk; the
tables are cached per process with :func:`functools.lru_cache` and per-cluster code only
interpolates in them.

Units: masses in Msun/h, comoving distances in Mpc/h, densities in (Msun/h) / (Mpc/h)^3.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

__all__ = ["C_KMS", "RHO_CRIT0", "Tables", "get_tables"]

#: Speed of light [km/s].
C_KMS = 299792.458
#: Critical density today, (Msun/h) / (Mpc/h)^3.
RHO_CRIT0 = 2.77536627e11
#: Newton's G in (km/s)^2 Mpc / Msun.
G_KMS2_MPC_MSUN = 4.30091727e-9

_COLOSSUS_NAMES = {
    "multidark-planck": "multidark-planck",
    "planck18": "planck18",
    "planck15": "planck15",
    "WMAP9": "WMAP9",
    "bolshoi": "bolshoi",
}


@dataclass
class Tables:
    """Tabulated functions of one cosmology (see :func:`get_tables`)."""

    name: str
    h: float
    Om0: float
    params: dict
    z: np.ndarray  # redshift grid for distances/growth
    chi: np.ndarray  # comoving distance [Mpc/h]
    E: np.ndarray  # H(z)/H0
    Om: np.ndarray  # Omega_m(z)
    growth: np.ndarray  # D(z)/D(0)
    zh: np.ndarray  # coarse redshift grid of halo tables
    logm: np.ndarray  # log10 M200c grid of halo tables
    cdf_n: np.ndarray  # (nz, nm) cumulative number density n(<M) [(Mpc/h)^-3]
    cdf_nb: np.ndarray  # (nz, nm) cumulative of b(M) dn
    dndlog10m: np.ndarray  # (nz, nm) Tinker08 dn/dlog10M [(Mpc/h)^-3 dex^-1]
    bias: np.ndarray  # (nz, nm) Tinker10 bias
    conc: dict  # model -> (nz, nm) c200c
    log_r_xi: np.ndarray  # log10 r grid [Mpc/h comoving]
    xi0: np.ndarray  # linear correlation function at z = 0
    # last interpolated row per halo table, id(table) -> (table, z, row); see _row
    _row_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # ------------------------------------------------------------------ background
    def E_of_z(self, z):
        """H(z)/H0."""
        return np.interp(z, self.z, self.E)

    def chi_of_z(self, z):
        """Comoving distance [Mpc/h]."""
        return np.interp(z, self.z, self.chi)

    def z_of_chi(self, chi):
        """Redshift at comoving distance ``chi`` [Mpc/h] (negative distances give z < 0)."""
        return np.interp(chi, self.chi, self.z, left=-1.0)

    def Om_of_z(self, z):
        return np.interp(z, self.z, self.Om)

    def growth_rate(self, z):
        """Linear growth rate f ≈ Ω_m(z)^0.55 (Linder 2005, astro-ph/0507263)."""
        return self.Om_of_z(z) ** 0.55

    def rho_crit(self, z):
        """Critical density at z, physical (Msun/h)/(Mpc/h)^3."""
        return RHO_CRIT0 * self.E_of_z(z) ** 2

    def r200c_phys(self, logm, z):
        """R200c [physical Mpc/h] of a halo of log10 M200c [Msun/h]."""
        return (3.0 * 10.0**logm / (800.0 * np.pi * self.rho_crit(z))) ** (1.0 / 3.0)

    def v200(self, logm, z):
        """Circular velocity at R200c, sqrt(G M200c / R200c) [km/s]."""
        return np.sqrt(G_KMS2_MPC_MSUN * 10.0**logm / self.r200c_phys(logm, z))

    # ------------------------------------------------------------------ halo tables
    def _zw(self, z: float) -> tuple[int, float]:
        # plain-float arithmetic (np.clip on scalars costs ~10 µs a call, and this runs ~20
        # times a host); the same IEEE operations as on numpy scalars
        zh = self.zh
        i = min(max(int(np.searchsorted(zh, z)) - 1, 0), len(zh) - 2)
        w = (z - zh[i]) / (zh[i + 1] - zh[i])
        return i, min(max(float(w), 0.0), 1.0)

    def _row(self, arr: np.ndarray, z: float) -> np.ndarray:
        """``arr`` (one row per table redshift) interpolated to z; the last row per table is
        kept (read-only), since a host asks for the same z many times."""
        cache = self._row_cache
        hit = cache.get(id(arr))
        if hit is not None and hit[0] is arr and hit[1] == z:
            return hit[2]
        i, w = self._zw(z)
        row = (1.0 - w) * arr[i] + w * arr[i + 1]
        row.flags.writeable = False
        cache[id(arr)] = (arr, z, row)
        return row

    def concentration(self, logm, z: float, model: str):
        """Mean c200c of a c–M relation at one redshift (colossus model name)."""
        return np.interp(logm, self.logm, self._row(self.conc[model], z))

    def halo_bias(self, logm, z: float):
        """Tinker et al. (2010, arXiv:1001.3162) large-scale halo bias b(M200c, z)."""
        return np.interp(logm, self.logm, self._row(self.bias, z))

    def xi_lin(self, r_com, z: float):
        """Linear matter correlation function at comoving separation r [Mpc/h]."""
        d = np.interp(z, self.z, self.growth)
        lr = np.log10(np.maximum(r_com, 10.0 ** self.log_r_xi[0]))
        return d * d * np.interp(lr, self.log_r_xi, self.xi0, right=0.0)

    def mass_cdf(self, z: float, weighted: bool = False) -> np.ndarray:
        """Cumulative n(<M) (or the bias-weighted one) on ``self.logm`` at redshift z."""
        return self._row(self.cdf_nb if weighted else self.cdf_n, z)

    def sample_masses(
        self, rng: np.random.Generator, n: int, z: float, lo: float, hi: float,
        weighted: bool = False,
    ) -> np.ndarray:  # fmt: skip
        """Draw log10 M200c from the Tinker08 mass function (optionally × b(M)) in [lo, hi]."""
        cdf = self.mass_cdf(z, weighted)
        c_lo, c_hi = np.interp([lo, hi], self.logm, cdf)
        u = c_lo + rng.random(n) * (c_hi - c_lo)
        return np.interp(u, cdf, self.logm)

    def number_density(self, z: float, lo: float, hi: float, weighted: bool = False) -> float:
        """∫ dn (or ∫ b dn) over log10 M in [lo, hi], (Mpc/h)^-3."""
        cdf = self.mass_cdf(z, weighted)
        c_lo, c_hi = np.interp([lo, hi], self.logm, cdf)
        return float(c_hi - c_lo)


@lru_cache(maxsize=4)
def get_tables(name: str = "multidark-planck") -> Tables:
    """Compute (once per process) the tables of cosmology ``name``.

    Mass function: Tinker et al. 2008 (ApJ 688, 709; arXiv:0803.2706), M200c. Concentrations:
    Diemer & Joyce 2019 (arXiv:1809.07326), Duffy et al. 2008 (arXiv:0804.2486), Ishiyama et al.
    2021 (arXiv:2007.14720). Bias: Tinker et al. 2010 (arXiv:1001.3162). All via colossus.
    """
    if name not in _COLOSSUS_NAMES:
        raise ValueError(f"unknown cosmology {name!r}; known: {sorted(_COLOSSUS_NAMES)}")
    from colossus.cosmology import cosmology
    from colossus.halo import concentration
    from colossus.lss import bias, mass_function

    cosmo = cosmology.setCosmology(_COLOSSUS_NAMES[name], persistence="")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = np.linspace(0.0, 0.8, 401)
        chi = cosmo.comovingDistance(0.0, z)  # Mpc/h
        E = cosmo.Ez(z)
        Om = cosmo.Om(z)
        growth = cosmo.growthFactor(z) / cosmo.growthFactor(0.0)
        zh = np.linspace(0.0, 0.55, 23)
        logm = np.arange(10.5, 16.0001, 0.02)
        m = 10.0**logm
        dn = np.empty((zh.size, logm.size))
        bs = np.empty_like(dn)
        conc = {k: np.empty_like(dn) for k in ("diemer19", "duffy08", "ishiyama21")}
        for i, zz in enumerate(zh):
            dn[i] = mass_function.massFunction(
                m, zz, q_in="M", q_out="dndlnM", mdef="200c", model="tinker08"
            )
            bs[i] = bias.haloBias(m, zz, "200c", model="tinker10")
            for k in conc:
                conc[k][i] = concentration.concentration(m, "200c", zz, model=k)
        r = np.logspace(-1.5, 2.5, 161)
        xi0 = cosmo.correlationFunction(r, 0.0)
    dlnm = np.log(10.0) * 0.02
    cdf_n = np.concatenate(
        [np.zeros((zh.size, 1)), np.cumsum(0.5 * (dn[:, 1:] + dn[:, :-1]) * dlnm, axis=1)], axis=1
    )
    wb = dn * bs
    cdf_nb = np.concatenate(
        [np.zeros((zh.size, 1)), np.cumsum(0.5 * (wb[:, 1:] + wb[:, :-1]) * dlnm, axis=1)], axis=1
    )
    params = {
        k: float(getattr(cosmo, k))
        for k in ("H0", "Om0", "Ob0", "sigma8", "ns")
        if getattr(cosmo, k, None) is not None
    }
    params["flat"] = bool(cosmo.flat)
    return Tables(
        name=name,
        h=cosmo.H0 / 100.0,
        Om0=cosmo.Om0,
        params=params,
        z=z,
        chi=chi,
        E=E,
        Om=Om,
        growth=growth,
        zh=zh,
        logm=logm,
        cdf_n=cdf_n,
        cdf_nb=cdf_nb,
        dndlog10m=dn * np.log(10.0),
        bias=bs,
        conc=conc,
        log_r_xi=np.log10(r),
        xi0=xi0,
    )
