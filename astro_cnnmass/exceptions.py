"""Exceptions and warnings raised by astro_cnnmass."""

from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["AstroCnnmassWarning", "InputError", "TooFewGalaxiesError"]


class AstroCnnmassWarning(AstropyUserWarning):
    """A warning about the input or the result (dropped rows, out-of-domain input, ...)."""


class InputError(ValueError):
    """Bad user input: a missing column, a wrong unit, a value outside what is supported."""


class TooFewGalaxiesError(InputError):
    """Fewer galaxies than a method needs (for example fewer than 3 inside the cylinder)."""
