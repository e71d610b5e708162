"""ASDF extension of astro_cnnmass: tags, schemas and converters.

The package defines two tagged types, following the layout of photutils' ASDF support:

* ``asdf://astro-cnnmass.org/tags/model_bundle-1.0.0`` -- a trained network with everything
  needed to use it (:class:`astro_cnnmass.weights.ModelBundle`);
* ``asdf://astro-cnnmass.org/tags/mock_catalog-1.0.0`` -- a catalogue of mock cluster
  observations (:class:`astro_cnnmass.mocks.catalog.MockCatalog`).

The YAML schemas and the manifest live in ``astro_cnnmass/data_spec/`` and are registered with
asdf through the ``asdf.resource_mappings`` entry point; the converters are registered through the
``asdf.extensions`` entry point (see ``pyproject.toml``).
"""

from __future__ import annotations

from pathlib import Path

from asdf.extension import ManifestExtension
from asdf.resource import DirectoryResourceMapping

__all__ = [
    "MANIFEST_URI",
    "MOCK_CATALOG_TAG",
    "MODEL_BUNDLE_TAG",
    "SCHEMA_PREFIX",
    "get_extensions",
    "get_resource_mappings",
]

_DATA_SPEC = Path(__file__).parent / "data_spec"

SCHEMA_PREFIX = "asdf://astro-cnnmass.org/schemas/"
MANIFEST_PREFIX = "asdf://astro-cnnmass.org/manifests/"
MANIFEST_URI = MANIFEST_PREFIX + "astro_cnnmass-1.0.0"
MODEL_BUNDLE_TAG = "asdf://astro-cnnmass.org/tags/model_bundle-1.0.0"
MOCK_CATALOG_TAG = "asdf://astro-cnnmass.org/tags/mock_catalog-1.0.0"


def get_resource_mappings() -> list[DirectoryResourceMapping]:
    """Resource mappings that make the package's schemas and manifest known to asdf."""
    return [
        DirectoryResourceMapping(_DATA_SPEC / "schemas", SCHEMA_PREFIX),
        DirectoryResourceMapping(_DATA_SPEC / "manifests", MANIFEST_PREFIX),
    ]


def get_extensions() -> list[ManifestExtension]:
    """The package's ASDF extension (converters for ModelBundle and MockCatalog)."""
    from .mocks.catalog import MockCatalogConverter
    from .weights import ModelBundleConverter

    return [
        ManifestExtension.from_uri(
            MANIFEST_URI,
            converters=[ModelBundleConverter(), MockCatalogConverter()],
            legacy_class_names=[],
        )
    ]
