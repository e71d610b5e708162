"""Member positions and velocities drawn jointly from equilibrium distribution functions.

Generator step G5–G6 (default ``member_velocities='df'``). The galaxies of the host's smooth,
orbiting population are particles of an equilibrium, spherical distribution function f(E, L) of
the galaxy tracer ν(r) in the NFW potential of the host, sampled with galpy (Bovy 2015, ApJS 216,
29, arXiv:1412.3451; ``galpy.df.eddingtondf``, ``osipkovmerrittdf``, ``constantbetadf``) by
``scripts/build_df_library.py`` into a library of *dimensionless* models (lengths in R200c,
velocities in V200c = sqrt(G M200c / R200c)) shipped as ``astro_cnnmass/data/
mock_df_library-v1.npz``. Per cluster the library is only scaled (× R200c, × V200c): the same
random stream gives the same velocities in V200 units at every mass.

Library grid (see the build script): c200c ∈ {2.5, 4, 6.5, 10}; NFW tracers with
c_gal = f_c c200c, f_c ∈ {0.45, 0.7, 1.1}, and Einasto (α = 0.2) tracers with f_c ∈ {0.5, 1};
components: isotropic (Eddington 1916 inversion), Osipkov–Merritt (Osipkov 1979; Merritt 1985)
with r_a ∈ {0.7, 2} r_s, and constant β = ±½ (Cuddeford 1991; An & Evans 2006,
astro-ph/0511686). The energies are cut at Φ(6 R200c) (``rmax`` of the galpy DFs; the build
script's ``R_MAX_DF``; a cut at Φ(3 R200c) gave σ_15 8 % below Evrard et al. 2008, see
docs/mocks.rst) and the particles kept are those inside 2.5 R200c (``R_KEEP``); the generator
truncates each host at 1–1.5 R200m, about the "edge radius" of the orbiting population (Aung et
al. 2021, arXiv:2003.11557), so library particles beyond R200c are the host's splashback
(backsplash) galaxies, moving both in and out.

A host's galaxies are drawn from a *mixture* of library models. A weighted sum of DFs of the
same tracer in the same potential is again an equilibrium DF of that tracer, so every mixture is
a self-consistent model; the mixture weights (stored per cluster as ``df_w_*``) interpolate
between grid nodes (log c200c, f_c, log r_a: linear weights of the two bracketing nodes) and
build the anisotropy families of the generator:

* ``ml`` (Mamon & Łokas 2005, astro-ph/0405491, β from 0 to ½): ½ isotropic + ½ OM(r_a);
* ``tiret`` (β from 0 to β∞, Tiret et al. 2007, astro-ph/0610393): (1 − β∞) isotropic + β∞ OM;
* ``om``: pure Osipkov–Merritt (strongly radial outside r_a);
* ``const`` β ∈ [−½, ½]: (1 − 2|β|) isotropic + 2|β| of the β = ±½ model. Einasto tracers have
  a cored centre, which admits no DF with central β > 0 (cusp-slope theorem γ0 ≥ 2β0, An & Evans
  2006), so for them β > 0 becomes the Tiret-like mixture (1 − β) iso + β OM(2 r_s) and β < 0 is
  isotropic; the columns record what was used.

Galaxies are sampled *without replacement* within a host (no duplicate galaxies); only when a
host has more galaxies inside its truncation radius than a library model holds (8192 particles,
≳ 10^15.3 Msun/h with a deep survey) are particles reused, each with a new random orientation.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources

import numpy as np

__all__ = ["DF_LIBRARY_FILE", "DFLibrary", "get_library", "mixture_weights", "sample_df_members"]

DF_LIBRARY_FILE = "mock_df_library-v1.npz"
COMP_ISO, COMP_OM, COMP_BETA = 0, 1, 2


class DFLibrary:
    """The dimensionless DF library (particles (r, v_r, v_t) per model, sorted by r)."""

    def __init__(self, particles: np.ndarray, models: np.ndarray, version: int):
        self.particles = np.ascontiguousarray(particles, dtype=np.float32)
        self.models = np.asarray(models, float)  # c200c, tracer, f_c, alpha, comp, par
        self.version = int(version)
        self.r = self.particles[:, :, 0]
        m = self.models
        self.c_nodes = np.unique(m[:, 0])
        self.fc_nodes = {t: np.unique(m[m[:, 1] == t, 2]) for t in (0, 1)}
        self.ra_nodes = np.unique(m[m[:, 4] == COMP_OM, 5])
        self._index = {}
        for k, row in enumerate(m):
            self._index[(row[0], int(row[1]), row[2], int(row[4]), row[5])] = k

    @classmethod
    def load(cls, path=None) -> DFLibrary:
        if path is None:
            ref = resources.files("astro_cnnmass") / "data" / DF_LIBRARY_FILE
            with resources.as_file(ref) as p:
                d = np.load(p)
                return cls(d["particles"], d["models"], int(d["version"]))
        d = np.load(path)
        return cls(d["particles"], d["models"], int(d["version"]))

    def index(self, c: float, tracer: int, fc: float, comp: int, par: float) -> int:
        return self._index[(c, tracer, fc, comp, par)]


@lru_cache(maxsize=1)
def get_library() -> DFLibrary:
    """The bundled library (or the file named by ``$ASTRO_CNNMASS_DF_LIBRARY``), loaded once per
    process."""
    return DFLibrary.load(os.environ.get("ASTRO_CNNMASS_DF_LIBRARY") or None)


def _bracket(nodes: np.ndarray, x: float, log: bool = False) -> list[tuple[float, float]]:
    """Linear (or log-linear) interpolation weights of ``x`` on the two bracketing nodes."""
    if x <= nodes[0]:
        return [(float(nodes[0]), 1.0)]
    if x >= nodes[-1]:
        return [(float(nodes[-1]), 1.0)]
    j = int(np.searchsorted(nodes, x)) - 1
    a, b = nodes[j], nodes[j + 1]
    t = (np.log(x / a) / np.log(b / a)) if log else (x - a) / (b - a)
    return [(float(a), 1.0 - t), (float(b), t)]


def anisotropy_components(h: dict, lib: DFLibrary, tracer: int) -> dict[str, float]:
    """Component weights (iso, OM, β=+½, β=−½) and the OM radius [r_s] of a host."""
    model = int(h["anisotropy_model"])
    w = {"iso": 0.0, "om": 0.0, "bpos": 0.0, "bneg": 0.0}
    ra = float(lib.ra_nodes[-1])
    if model == 0:  # Mamon & Łokas-like
        w["iso"], w["om"], ra = 0.5, 0.5, h["ml_ra_rs"]
    elif model == 1:  # Tiret-like
        b = h["tiret_beta_inf"]
        w["iso"], w["om"], ra = 1.0 - b, b, h["tiret_rb_rs"]
    elif model == 3:  # Osipkov–Merritt
        w["om"], ra = 1.0, h["om_ra_rs"]
    else:  # constant β
        b = float(np.clip(h["const_beta"], -0.5, 0.5))
        if tracer == 0:
            w["iso"] = 1.0 - 2.0 * abs(b)
            w["bpos" if b >= 0 else "bneg"] = 2.0 * abs(b)
        elif b > 0:  # cored tracer: no central β > 0 (An & Evans 2006)
            w["iso"], w["om"] = 1.0 - b, b
        else:
            w["iso"] = 1.0
    return {**w, "ra_rs": float(ra)}


def mixture_weights(h: dict, lib: DFLibrary | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Library model indices and weights of a host, plus a summary for the catalogue."""
    lib = lib or get_library()
    tracer = int(h["tracer_profile"])
    comp = anisotropy_components(h, lib, tracer)
    wc = _bracket(lib.c_nodes, h["c200c"], log=True)
    wf = _bracket(lib.fc_nodes[tracer], h["f_c"])
    wr = _bracket(lib.ra_nodes, comp["ra_rs"], log=True)
    parts: list[tuple[int, float]] = []
    for c, a in wc:
        for fc, b in wf:
            if comp["iso"] > 0:
                parts.append((lib.index(c, tracer, fc, COMP_ISO, 0.0), a * b * comp["iso"]))
            if comp["om"] > 0:
                for ra, g in wr:
                    parts.append((lib.index(c, tracer, fc, COMP_OM, ra), a * b * g * comp["om"]))
            for key, par in (("bpos", 0.5), ("bneg", -0.5)):
                if comp[key] > 0:
                    parts.append((lib.index(c, tracer, fc, COMP_BETA, par), a * b * comp[key]))
    idx = np.array([p[0] for p in parts], dtype=np.int64)
    w = np.array([p[1] for p in parts])
    w = w / w.sum()
    c_eff = float(np.exp(sum(np.log(c) * a for c, a in wc)))
    fc_eff = float(sum(fc * b for fc, b in wf))
    summary = {
        "df_w_iso": comp["iso"],
        "df_w_om": comp["om"],
        "df_w_beta_pos": comp["bpos"],
        "df_w_beta_neg": comp["bneg"],
        "df_om_ra_rs": comp["ra_rs"] if comp["om"] > 0 else np.nan,
        "df_c200c": c_eff,
        "df_c_gal": c_eff * fc_eff,
        "df_library_version": float(lib.version),
    }
    return idx, w, summary


def _tangent_directions(rng: np.random.Generator, u: np.ndarray) -> np.ndarray:
    g = rng.standard_normal(u.shape)
    g -= np.einsum("ij,ij->i", g, u)[:, None] * u
    return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)


def sample_df_members(
    rng: np.random.Generator, h: dict, n: int, x_max: float, lib: DFLibrary | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Radii, directions and velocities of ``n`` orbiting galaxies of a host (V200 units).

    Parameters
    ----------
    rng : numpy.random.Generator
    h : dict
        Host parameters (``c200c``, ``f_c``, ``tracer_profile``, anisotropy parameters).
    n : int
        Number of galaxies.
    x_max : float
        Truncation radius r_t / R200c (at most the library's 2.5).

    Returns
    -------
    x : ndarray (n,)
        r / R200c.
    u : ndarray (n, 3)
        Unit radial vectors.
    v : ndarray (n, 3)
        Velocities in units of V200c (multiply by V200c [km/s]).
    summary : dict
        Mixture weights and effective parameters (per-cluster columns).
    """
    lib = lib or get_library()
    idx, w, summary = mixture_weights(h, lib)
    counts = rng.multinomial(n, w) if n > 0 else np.zeros(len(w), int)
    xs, vr_l, vt_l = [], [], []
    n_reused = 0
    for k, nk in zip(idx, counts):
        if nk == 0:
            continue
        r_k = lib.r[k]
        K = int(np.searchsorted(r_k, x_max))
        if K == 0:
            continue
        if nk <= K:
            sel = rng.choice(K, nk, replace=False)
        else:  # reuse (new orientation below) only beyond the library size
            reps = [rng.permutation(K) for _ in range(nk // K)]
            sel = np.concatenate([*reps, rng.choice(K, nk % K, replace=False)])
            n_reused += nk - K
        p = lib.particles[k, sel].astype(np.float64)
        xs.append(p[:, 0])
        vr_l.append(p[:, 1])
        vt_l.append(p[:, 2])
    if xs:
        x = np.concatenate(xs)
        vr = np.concatenate(vr_l)
        vt = np.concatenate(vt_l)
    else:
        x = vr = vt = np.empty(0)
    from .members import random_directions

    u = random_directions(rng, x.size)
    t = _tangent_directions(rng, u)
    v = vr[:, None] * u + vt[:, None] * t
    summary["df_n_reused"] = float(n_reused)
    return x, u, v, summary
