"""Sphinx configuration of the astro_cnnmass documentation (sphinx-astropy based)."""

import datetime

from sphinx_astropy.conf.v2 import *  # noqa: F403

from astro_cnnmass import __version__

project = "astro_cnnmass"
author = "astro_cnnmass developers"
copyright = f"{datetime.datetime.now().year}, {author}"
version = release = __version__

# The build machines have no network: no intersphinx inventories.
intersphinx_mapping = {}
extensions = [e for e in extensions if e != "sphinx.ext.intersphinx"]  # noqa: F405
extensions.append("sphinx.ext.intersphinx")  # noqa: F405

exclude_patterns = ["_build", "_generated", "dev", "**.ipynb_checkpoints"]
html_theme_options = {"github_url": ""}
html_title = f"astro_cnnmass {release}"
automodapi_toctreedirnm = "api"
automodsumm_inherited_members = False
numpydoc_show_class_members = False
# Every cross-reference to this package must resolve. Without intersphinx (offline builds),
# references to other projects cannot, so those are ignored by package prefix; the bare names
# come from string annotations of TYPE_CHECKING-only imports in signatures.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(astropy|numpy|np|scipy|specutils|astroquery|torch|matplotlib|asdf|dask"
               r"|colossus|collections|typing|pathlib|os|argparse|sklearn|galpy|jax)(\..*)?"),
    (r"py:class", r"QTable|Table|SkyCoord|Cosmology|Quantity|tuple\[str|dict\[.*"),
]
suppress_warnings = ["config.cache"]


# ---------------------------------------------------------------------------------------------
# The column specifications of data_spec/tables, rendered as tables (docs/data_spec.rst).
def _render_table_specs() -> None:
    from pathlib import Path

    from astro_cnnmass.specs import TABLE_SPECS, table_spec

    out = Path(__file__).parent / "_generated"
    out.mkdir(exist_ok=True)
    for name in TABLE_SPECS:
        spec = table_spec(name)
        lines = [spec["title"], "=" * len(spec["title"]), "", spec["description"], "",
                 ".. list-table::", "   :header-rows: 1", "",
                 "   * - column", "     - unit", "     - dtype", "     - required",
                 "     - description"]
        for col in spec["columns"]:
            dtype = col["dtype"] if isinstance(col["dtype"], str) else " or ".join(col["dtype"])
            unit = col.get("unit")
            unit = "–" if unit is None else (unit or "dimensionless")
            lines += [f"   * - ``{col['name']}``", f"     - {unit}", f"     - {dtype}",
                      f"     - {'yes' if col['required'] else 'no'}",
                      f"     - {col['description']}"]
        (out / f"{name}.rst").write_text("\n".join(lines) + "\n")


_render_table_specs()
