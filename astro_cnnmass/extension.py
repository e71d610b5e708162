"""ASDF extension of astro_cnnmass: tags, schemas and converters.

The package defines two tagged types, following the layout of photutils' ASDF support:

* ``asdf://astro-cnnmass.org/tags/model_bundle-1.0.0`` -- a trained network with everything
  needed to use it (:class:`astro_cnnmass.model.bundle.ModelBundle`);
* ``asdf://astro-cnnmass.org/tags/mock_catalog-1.0.0`` -- a catalogue of mock cluster
  observations (:class:`astro_cnnmass.mocks.catalog.MockCatalog`).

The YAML schemas and the manifest live in the top-level ``data_spec/`` of the source tree, which
is installed as ``astro_cnnmass/data_spec`` (one copy: a setuptools ``package-dir`` mapping). They
are registered with asdf through the ``asdf.resource_mappings`` entry point; the converters are
registered through the ``asdf.extensions`` entry point (see ``pyproject.toml``). The tag URIs
are in :mod:`astro_cnnmass.tags`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asdf.extension import Converter, ManifestExtension
from asdf.resource import DirectoryResourceMapping

from .tags import MANIFEST_PREFIX, MANIFEST_URI, MODEL_BUNDLE_TAG, SCHEMA_PREFIX

__all__ = ["data_spec_path", "get_extensions", "get_resource_mappings"]


def data_spec_path() -> Path:
    """Folder of the package's data specifications (schemas, manifest, column specs).

    In an installed wheel it is ``astro_cnnmass/data_spec``; in a source checkout or an editable
    install it is the top-level ``data_spec/`` next to the package.

    Raises
    ------
    FileNotFoundError
        If neither exists (a broken installation).
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "data_spec", here.parent / "data_spec"):
        if (candidate / "schemas").is_dir():
            return candidate
    raise FileNotFoundError(
        f"astro_cnnmass data specifications not found next to {here}: the installation is "
        "incomplete (reinstall the package)"
    )


def get_resource_mappings() -> list[DirectoryResourceMapping]:
    """Resource mappings that make the package's schemas and manifest known to asdf."""
    spec = data_spec_path()
    return [
        DirectoryResourceMapping(spec / "schemas", SCHEMA_PREFIX),
        DirectoryResourceMapping(spec / "manifests", MANIFEST_PREFIX),
    ]


class _DeferredModelBundleConverter(Converter):
    """:class:`~astro_cnnmass.model.bundle.ModelBundleConverter`, imported when first used.

    asdf loads every installed extension the first time it opens or writes any file; importing
    :mod:`astro_cnnmass.model` then would import torch (~2 s), also for a mock catalogue. The
    type is named as a string, so nothing is imported until a model bundle is read or written.
    """

    tags = (MODEL_BUNDLE_TAG,)
    types = ("astro_cnnmass.model.bundle.ModelBundle",)

    @staticmethod
    def _converter() -> Converter:
        from .model.bundle import ModelBundleConverter

        return ModelBundleConverter()

    def to_yaml_tree(self, obj: Any, tag: str, ctx: Any) -> Any:
        return self._converter().to_yaml_tree(obj, tag, ctx)

    def from_yaml_tree(self, node: Any, tag: str, ctx: Any) -> Any:
        return self._converter().from_yaml_tree(node, tag, ctx)


def get_extensions() -> list[ManifestExtension]:
    """The package's ASDF extension (converters for ModelBundle and MockCatalog)."""
    from .mocks.catalog import MockCatalogConverter

    return [
        ManifestExtension.from_uri(
            MANIFEST_URI,
            converters=[_DeferredModelBundleConverter(), MockCatalogConverter()],
            legacy_class_names=[],
        )
    ]
