"""The flags of a batch as one bitmask array (issue 14: no per-cluster Python lists)."""

import numpy as np
import pytest

from astro_cnnmass.flags import FLAG_NAMES, FlagArray


def test_flags_read_like_lists_of_names_in_the_fixed_order():
    flags = FlagArray.empty(4)
    flags.set("out_of_distribution", [True, False, False, True])
    flags.set("few_galaxies", [True, True, False, False])
    assert len(flags) == 4
    assert flags[0] == ["few_galaxies", "out_of_distribution"]  # FLAG_NAMES order
    assert flags[2] == []
    assert list(flags) == [
        ["few_galaxies", "out_of_distribution"],
        ["few_galaxies"],
        [],
        ["out_of_distribution"],
    ]
    assert flags == list(flags) and flags == FlagArray(flags.bits.copy())
    assert flags != FlagArray.empty(4)


def test_joined_strings_and_membership_are_vectorised():
    flags = FlagArray.empty(5)
    flags.set("too_few_galaxies", [True, False, False, False, True])
    flags.set("kde_undefined", [True, False, True, False, False])
    assert flags.joined().tolist() == [
        "too_few_galaxies,kde_undefined",
        "",
        "kde_undefined",
        "",
        "too_few_galaxies",
    ]
    np.testing.assert_array_equal(flags.has("kde_undefined"), [True, False, True, False, False])
    assert FlagArray.empty(0).joined().shape == (0,)


def test_clear_slice_copy_and_concatenate():
    flags = FlagArray.empty(3)
    flags.set("z_outside_training", [True, True, True])
    other = flags.copy()
    other.clear("z_outside_training", [False, True, False])
    assert flags[1] == ["z_outside_training"]  # the copy is independent
    assert other[1] == []
    assert other[1:].tolist() == [[], ["z_outside_training"]]
    both = FlagArray.concatenate([flags, other])
    assert len(both) == 6 and both[4] == []


def test_every_flag_has_its_own_bit():
    flags = FlagArray.empty(len(FLAG_NAMES))
    for k, name in enumerate(FLAG_NAMES):
        flags.set(name, np.arange(len(FLAG_NAMES)) == k)
    assert [f for (f,) in flags] == list(FLAG_NAMES)


def test_unknown_flags_and_bad_bits_are_errors():
    flags = FlagArray.empty(2)
    with pytest.raises(ValueError, match="unknown flag"):
        flags.set("not_a_flag", [True, False])
    with pytest.raises(ValueError, match="outside the flag bits"):
        FlagArray([1 << len(FLAG_NAMES)])
    with pytest.raises(ValueError, match="1-D integer"):
        FlagArray([0.5])


def test_predict_packed_returns_flag_bits_that_the_table_spells_out():
    from astro_cnnmass import DynamicalMassEstimator
    from astro_cnnmass.batch.streaming import estimate_catalog

    est = DynamicalMassEstimator.load()
    rng = np.random.default_rng(5)
    counts = np.array([60, 2, 40])  # the second cluster has too few galaxies
    offsets = np.concatenate([[0], np.cumsum(counts)])
    R = rng.uniform(0.05, 1.5, offsets[-1])
    v = rng.normal(0, 700, offsets[-1])
    z = np.array([0.08, 0.08, 0.9])  # the third is outside the training redshifts
    out = est.predict_packed(R, v, offsets, z)
    assert isinstance(out["flags"], FlagArray)
    assert "too_few_galaxies" in out["flags"][1]
    assert "z_outside_training" in out["flags"][2]
    table = estimate_catalog(est, (R, v, offsets, z))
    assert list(table["flags"]) == out["flags"].joined().tolist()
