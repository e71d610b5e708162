"""Regenerate the SYNTHETIC canned service responses used by tests/test_query.py.

Nothing here comes from a real service: the galaxies are drawn from a toy cluster
model around the position and redshift of Abell 2199, formatted like the replies
of the SDSS SkyServer (CSV, as parsed by ``astroquery.sdss``) and NED (VOTable, as
parsed by ``astroquery.ipac.ned``). Run from the repository root::

    python tests/data/make_canned_responses.py

It writes ``tests/data/sdss_a2199_synthetic.csv`` (and the identical bundled copy
``astro_cnnmass/data/sdss_canned_example.csv``), ``tests/data/sdss_empty.csv`` and
``tests/data/ned_a2199_synthetic.xml``. Fixed seed: the output is reproducible.
"""

from pathlib import Path

import astropy.cosmology.units as cu
import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.cosmology import Planck18
from astropy.io.votable import from_table
from astropy.table import Table

HERE = Path(__file__).parent
PKG_DATA = HERE.parent.parent / "astro_cnnmass" / "data"
CENTER = SkyCoord(247.1594 * u.deg, 39.5513 * u.deg)
Z_CL = 0.0302
C_KMS = 299792.458
SIGMA = 750.0  # km/s, toy line-of-sight dispersion
V_WINDOW = 4000.0
R_SEARCH = 3.0  # Mpc/h physical

COLUMNS = [
    "specobjid",
    "objid",
    "ra",
    "dec",
    "z",
    "z_err",
    "zWarning",
    "class",
    "plate",
    "mjd",
    "fiberID",
    "petroMag_r",
]


def mpch_to_deg(r_mpch):
    r_mpc = (r_mpch * u.Mpc / cu.littleh).to(u.Mpc, cu.with_H0(Planck18.H0))
    return (r_mpc / Planck18.angular_diameter_distance(Z_CL) * u.rad).to_value(u.deg)


def positions(rng, radius_mpch):
    pa = rng.uniform(0, 360, radius_mpch.size) * u.deg
    sep = mpch_to_deg(radius_mpch) * u.deg
    return CENTER.directional_offset_by(pa, sep)


def sdss_rows(rng):
    n_mem, n_int = 47, 10
    # members: projected radii from a cored 1/R-like profile, truncated at 2 Mpc/h
    r_mem = 0.15 * ((1 + 2.0 / 0.15) ** rng.uniform(0, 1, n_mem) - 1)
    v_mem = rng.normal(0, SIGMA, n_mem)
    v_mem = np.clip(v_mem, -3 * SIGMA, 3 * SIGMA)
    # interlopers: uniform in area out to the search radius, flat in velocity
    r_int = R_SEARCH * np.sqrt(rng.uniform(0.01, 1, n_int))
    v_int = rng.uniform(-V_WINDOW, V_WINDOW, n_int) * 0.98
    # rows with bad redshifts (zWarning set, or a failed zErr), velocity anywhere
    n_bad = 5
    r_bad = R_SEARCH * np.sqrt(rng.uniform(0.01, 0.9, n_bad))
    v_bad = rng.uniform(-V_WINDOW, V_WINDOW, n_bad) * 0.98
    r = np.concatenate([r_mem, r_int, r_bad])
    v = np.concatenate([v_mem, v_int, v_bad])
    n = r.size
    pos = positions(rng, r)
    z = Z_CL + v * (1 + Z_CL) / C_KMS
    z_err = np.abs(rng.normal(1.2e-5, 0.4e-5, n)) + 3e-6
    zwarning = np.zeros(n, dtype=int)
    zwarning[n_mem + n_int : n_mem + n_int + 4] = [4, 4, 16, 4 | 128]
    z_err[-1] = -1.0  # a failed redshift error with zWarning = 0
    plates = rng.choice([1056, 1057, 1170, 1171, 1691], n)
    mjd_of = {1056: 52764, 1057: 52522, 1170: 52756, 1171: 52753, 1691: 53260}
    rows = []
    for i in range(n):
        plate = int(plates[i])
        fiber = int(rng.integers(1, 641))
        specobjid = (plate << 50) + (fiber << 38) + (26 << 10)  # DR8+-style packing (synthetic)
        objid = 1237655000000000000 + int(rng.integers(0, 10**12))
        rows.append(
            [
                specobjid,
                objid,
                round(pos.ra.deg[i], 6),
                round(pos.dec.deg[i], 6),
                round(z[i], 7),
                float(f"{z_err[i]:.3g}"),
                int(zwarning[i]),
                "GALAXY",
                plate,
                mjd_of[plate],
                fiber,
                round(rng.uniform(13.2, 17.7), 3),
            ]
        )
    return rows


def write_sdss(rows, path):
    lines = ["#Table1", ",".join(COLUMNS)]
    lines += [",".join(str(x) for x in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def write_ned(rng, path):
    n_g = 30
    r = 0.2 + 2.7 * np.sqrt(rng.uniform(0, 1, n_g))
    v = rng.normal(0, SIGMA, n_g)
    z = list(Z_CL + v * (1 + Z_CL) / C_KMS)
    types = ["G"] * n_g
    flags = [""] * n_g
    # background / foreground galaxies outside the window, galaxies without z,
    # photometric redshifts in the window, and non-galaxies
    extra = [
        ("G", 0.0812, ""),
        ("G", 0.0655, ""),
        ("G", 0.0101, ""),
        ("G", 0.0950, "PHOT"),
        ("G", np.nan, ""),
        ("G", np.nan, ""),
        ("G", 0.0299, "PHOT"),
        ("G", 0.0310, "PHOT"),
        ("GClstr", Z_CL, ""),
        ("RadioS", np.nan, ""),
        ("XrayS", np.nan, ""),
        ("*", 0.0, ""),
        ("QSO", 1.2, ""),
    ]
    r = np.concatenate([r, 0.2 + 2.7 * np.sqrt(rng.uniform(0, 1, len(extra)))])
    r[n_g + 8] = 0.0  # the cluster itself at the centre
    for t, zz, fl in extra:
        types.append(t)
        z.append(zz)
        flags.append(fl)
    pos = positions(rng, r)
    n = r.size
    z = np.array(z)
    names = [
        "Abell 2199" if t == "GClstr" else f"SYNTH J{pos.ra.deg[i]:09.5f}{pos.dec.deg[i]:+09.5f}"
        for i, t in enumerate(types)
    ]
    tab = Table(
        {
            "No.": np.arange(1, n + 1, dtype=np.int32),
            "Object Name": names,
            "RA": np.round(pos.ra.deg, 5),
            "DEC": np.round(pos.dec.deg, 5),
            "Type": types,
            "Velocity": np.round(z * C_KMS, 0),
            "Redshift": np.round(z, 6),
            "Redshift Flag": flags,
            "Separation": np.round(pos.separation(CENTER).arcmin, 3),
        },
        masked=True,
    )
    tab["Redshift"].mask = ~np.isfinite(z)
    tab["Velocity"].mask = ~np.isfinite(z)
    tab["RA"].unit = u.deg
    tab["DEC"].unit = u.deg
    tab["Velocity"].unit = u.km / u.s
    tab["Separation"].unit = u.arcmin
    vot = from_table(tab)
    vot.resources[0].description = (
        "SYNTHETIC NED-like near-position reply around Abell 2199 for astro_cnnmass tests; "
        "not real NED data."
    )
    vot.to_xml(str(path))


def main():
    rng = np.random.default_rng(20190213)
    rows = sdss_rows(rng)
    write_sdss(rows, HERE / "sdss_a2199_synthetic.csv")
    write_sdss(rows, PKG_DATA / "sdss_canned_example.csv")
    (HERE / "sdss_empty.csv").write_text("#Table1\n" + ",".join(COLUMNS) + "\n")
    write_ned(rng, HERE / "ned_a2199_synthetic.xml")


if __name__ == "__main__":
    main()
