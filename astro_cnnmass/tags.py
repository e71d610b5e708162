"""URIs of the package's ASDF tags, schemas and manifest (one place, imported by every converter).

The schemas and the manifest they name live in the top-level ``data_spec/`` of the source tree,
installed as ``astro_cnnmass/data_spec`` (:func:`astro_cnnmass.extension.data_spec_path`).
"""

from __future__ import annotations

__all__ = [
    "MANIFEST_PREFIX",
    "MANIFEST_URI",
    "MOCK_CATALOG_TAG",
    "MODEL_BUNDLE_TAG",
    "SCHEMA_PREFIX",
]

SCHEMA_PREFIX = "asdf://astro-cnnmass.org/schemas/"
MANIFEST_PREFIX = "asdf://astro-cnnmass.org/manifests/"
MANIFEST_URI = MANIFEST_PREFIX + "astro_cnnmass-1.0.0"
#: Tag of a trained model file (:class:`astro_cnnmass.model.bundle.ModelBundle`).
MODEL_BUNDLE_TAG = "asdf://astro-cnnmass.org/tags/model_bundle-1.0.0"
#: Tag of a mock catalogue (:class:`astro_cnnmass.mocks.catalog.MockCatalog`).
MOCK_CATALOG_TAG = "asdf://astro-cnnmass.org/tags/mock_catalog-1.0.0"
