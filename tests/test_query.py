"""Tests for astro_cnnmass.observe.query, run offline against canned (synthetic) responses.

The astroquery services are replaced by monkeypatching their ``_request`` method,
as astroquery's own tests do; the replies are files in tests/data/ made by
tests/data/make_canned_responses.py. Only ``test_query_sdss_members_live`` talks to
a real service, and only with ``--remote-data``.
"""

import re
from pathlib import Path

import astropy.cosmology.units as cu
import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.cosmology import WMAP9, Planck18
from astroquery.ipac import ned
from astroquery.sdss import SDSS
from astroquery.utils.mocks import MockResponse

from astro_cnnmass.exceptions import AstroCnnmassWarning, InputError
from astro_cnnmass.observe.query import (
    NoMembersError,
    load_canned_sdss_example,
    query_ned_members,
    query_sdss_members,
    search_radius_angle,
)

DATA = Path(__file__).parent / "data"
A2199 = SkyCoord(247.1594 * u.deg, 39.5513 * u.deg)
Z_A2199 = 0.0302
C_KMS = 299792.458


@pytest.fixture
def sdss_reply(monkeypatch):
    """Serve a canned SkyServer CSV; record every request in the returned list."""
    sent = []
    state = {"file": DATA / "sdss_a2199_synthetic.csv"}

    def mock_request(method, url, **kwargs):
        sent.append({"method": method, "url": url, **kwargs})
        return MockResponse(content=state["file"].read_bytes(), url=url)

    monkeypatch.setattr(SDSS, "_request", mock_request)
    return sent, state


@pytest.fixture
def ned_reply(monkeypatch):
    sent = []

    def mock_request(method, url=None, params=None, **kwargs):
        sent.append({"method": method, "url": url, "params": params})
        return MockResponse(content=(DATA / "ned_a2199_synthetic.xml").read_bytes(), url=url)

    monkeypatch.setattr(ned.Ned, "_request", mock_request)
    return sent


def _sql_numbers(sql, pattern):
    return [float(x) for x in re.search(pattern, sql).groups()]


def test_search_radius_angle_uses_angular_diameter_distance_and_h():
    radius = 3.0 * u.Mpc / cu.littleh
    expected = (3.0 / Planck18.h) / Planck18.angular_diameter_distance(Z_A2199).value * u.rad
    assert u.isclose(search_radius_angle(radius, Z_A2199), expected.to(u.arcmin))
    # a different cosmology changes both h and D_A
    expected_wmap = (3.0 / WMAP9.h) / WMAP9.angular_diameter_distance(Z_A2199).value * u.rad
    assert u.isclose(search_radius_angle(radius, Z_A2199, WMAP9), expected_wmap.to(u.arcmin))
    # physical Mpc without h, and angles, are accepted too
    assert u.isclose(search_radius_angle(3.0 / Planck18.h * u.Mpc, Z_A2199), expected.to(u.arcmin))
    assert search_radius_angle(30 * u.arcmin, Z_A2199) == 30 * u.arcmin


@pytest.mark.parametrize("bad", [3.0, 3.0 * u.km / u.s, -1.0 * u.Mpc / cu.littleh])
def test_search_radius_angle_rejects_bad_radius(bad):
    with pytest.raises(InputError, match="radius"):
        search_radius_angle(bad, Z_A2199)


def test_query_sdss_members_sends_the_right_sql(sdss_reply):
    sent, _ = sdss_reply
    with pytest.warns(AstroCnnmassWarning, match="dropped 5 of 62"):
        members = query_sdss_members(A2199, Z_A2199, data_release=16)

    assert len(sent) == 1
    assert "dr16" in sent[0]["url"]
    sql = sent[0]["params"]["cmd"]
    assert "class = 'GALAXY'" in sql
    assert "SpecObj" in sql and "PhotoObj" in sql
    assert " ".join(sql.split()) == " ".join(members.meta["sql"].split())

    # redshift window: z_cl +- (1 + z_cl) v / c with v = 4000 km/s
    z_lo, z_hi = _sql_numbers(sql, r"s\.z BETWEEN ([\d.]+) AND ([\d.]+)")
    dz = (1 + Z_A2199) * 4000.0 / C_KMS
    assert z_lo == pytest.approx(Z_A2199 - dz, abs=1e-8)
    assert z_hi == pytest.approx(Z_A2199 + dz, abs=1e-8)

    # great-circle radius: cos(theta) with theta = 3 Mpc/h / D_A(z)
    (cos_r,) = _sql_numbers(sql, r">= ([\d.]+)")
    theta = search_radius_angle(3.0 * u.Mpc / cu.littleh, Z_A2199)
    assert cos_r == pytest.approx(np.cos(theta.to_value(u.rad)), abs=1e-12)
    assert theta.to_value(u.arcmin) > 100  # far beyond the 3 arcmin cone of query_region
    assert members.meta["radius_arcmin"] == pytest.approx(theta.to_value(u.arcmin))
    dec_lo, dec_hi = _sql_numbers(sql, r"s\.dec BETWEEN ([\d.\-]+) AND ([\d.\-]+)")
    assert dec_hi - dec_lo == pytest.approx(2 * theta.to_value(u.deg))

    assert members.meta["data_release"] == 16
    assert members.meta["center"] == A2199


def test_query_sdss_members_returns_clean_member_table(sdss_reply):
    with pytest.warns(AstroCnnmassWarning) as record:
        members = query_sdss_members(A2199, Z_A2199)
    assert len(record) == 1
    assert "zWarning != 0: 4" in str(record[0].message)
    assert "z_err < 0 or non-finite: 1" in str(record[0].message)

    assert len(members) == 57
    assert members.meta["n_dropped"] == 5
    for col in ("ra", "dec", "z", "z_err", "objid", "specobjid", "zWarning", "class", "sep"):
        assert col in members.colnames
    assert members["ra"].unit == u.deg and members["dec"].unit == u.deg
    assert members["objid"].dtype == np.uint64
    assert np.all(members["zWarning"] == 0)
    assert np.all(members["z_err"] >= 0)
    assert np.all(members["class"] == "GALAXY")
    assert np.all(members["sep"] <= members.meta["radius_arcmin"] * u.arcmin)
    assert np.all(np.abs(members["z"] - Z_A2199) <= members.meta["z_max"] - Z_A2199)


def test_query_sdss_members_max_z_err_drops_more(sdss_reply):
    with pytest.warns(AstroCnnmassWarning, match=r"z_err > 1e-05: \d+"):
        members = query_sdss_members(A2199, Z_A2199, max_z_err=1e-5)
    assert np.all(members["z_err"] <= 1e-5)


def test_query_sdss_members_velocity_window_and_cosmology(sdss_reply):
    sent, _ = sdss_reply
    with pytest.warns(AstroCnnmassWarning):
        members = query_sdss_members(
            A2199,
            Z_A2199,
            velocity_window=3000 * u.km / u.s,
            cosmology=WMAP9,
            radius=1.0 * u.deg,
        )
    sql = sent[0]["params"]["cmd"]
    z_lo, z_hi = _sql_numbers(sql, r"s\.z BETWEEN ([\d.]+) AND ([\d.]+)")
    assert z_hi - z_lo == pytest.approx(2 * (1 + Z_A2199) * 3000 / C_KMS, abs=2e-8)
    (cos_r,) = _sql_numbers(sql, r">= ([\d.]+)")
    assert cos_r == pytest.approx(np.cos(np.radians(1.0)), abs=1e-12)
    assert members.meta["cosmology"] == "WMAP9"


def test_query_sdss_members_empty_result_raises(sdss_reply):
    _, state = sdss_reply
    state["file"] = DATA / "sdss_empty.csv"
    with pytest.raises(NoMembersError, match="no galaxy"):
        query_sdss_members(A2199, Z_A2199)


def test_query_sdss_members_all_bad_raises(monkeypatch):
    lines = (DATA / "sdss_a2199_synthetic.csv").read_text().splitlines()
    header, rows = lines[:2], lines[2:]
    bad_rows = [",".join([*r.split(",")[:6], "4", *r.split(",")[7:]]) for r in rows[:3]]
    content = "\n".join(header + bad_rows).encode()
    monkeypatch.setattr(
        SDSS, "_request", lambda method, url, **kw: MockResponse(content=content, url=url)
    )
    with (
        pytest.warns(AstroCnnmassWarning, match="dropped 3 of 3"),
        pytest.raises(NoMembersError, match="bad redshifts"),
    ):
        query_sdss_members(A2199, Z_A2199)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"z_cluster": 0.0}, "z_cluster"),
        ({"z_cluster": np.nan}, "z_cluster"),
        ({"velocity_window": 4000 * u.Mpc}, "velocity_window"),
        ({"center": SkyCoord([1, 2] * u.deg, [3, 4] * u.deg)}, "scalar"),
    ],
)
def test_query_sdss_members_bad_input(sdss_reply, kwargs, match):
    args = {"center": A2199, "z_cluster": Z_A2199, **kwargs}
    with pytest.raises(InputError, match=match):
        query_sdss_members(args.pop("center"), args.pop("z_cluster"), **args)
    assert sdss_reply[0] == []  # nothing was sent


def test_canned_example_matches_test_response_and_query():
    bundled = Path(__file__).parent.parent / "astro_cnnmass" / "data" / "sdss_canned_example.csv"
    assert bundled.read_text() == (DATA / "sdss_a2199_synthetic.csv").read_text()
    raw = load_canned_sdss_example(raw=True)
    assert len(raw) == 62
    with pytest.warns(AstroCnnmassWarning, match="dropped 5 of 62"):
        members = load_canned_sdss_example()
    assert len(members) == 57
    assert "synthetic" in members.meta["source"]
    assert members.meta["z_cluster"] == Z_A2199


def test_query_ned_members_filters_types_and_window(ned_reply):
    with pytest.warns(AstroCnnmassWarning, match="photometric redshift: 2"):
        members = query_ned_members(A2199, Z_A2199)
    params = ned_reply[0]["params"]
    assert params["search_type"] == "Near Position Search"
    expected = search_radius_angle(3.0 * u.Mpc / cu.littleh, Z_A2199).to_value(u.arcmin)
    assert params["radius"] == pytest.approx(expected)
    assert len(members) == 30
    assert np.all(members["type"] == "G")
    assert np.all((members["z"] >= members.meta["z_min"]) & (members["z"] <= members.meta["z_max"]))
    assert np.all(np.isnan(members["z_err"]))
    assert "Abell 2199" not in list(members["name"])


def test_query_ned_members_empty_window_raises(ned_reply):
    with pytest.raises(NoMembersError, match="none of type"):
        query_ned_members(A2199, 0.5)


@pytest.mark.remote_data
def test_query_sdss_members_live():
    members = query_sdss_members(A2199, Z_A2199, radius=1.0 * u.Mpc / cu.littleh)
    assert len(members) > 20
    assert np.all(members["zWarning"] == 0)
    assert np.median(members["z"]) == pytest.approx(Z_A2199, abs=0.003)
