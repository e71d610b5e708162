"""Trained model files: :class:`ModelBundle` and its ASDF converter.

A model file is an ASDF file whose tree holds one tagged object under the key ``"model"``
(tag ``asdf://astro-cnnmass.org/tags/model_bundle-1.0.0``). It carries the network weights (as
plain arrays, one state dict per ensemble member), the network configuration, and everything
needed to feed the network correctly (feature configuration, cylinder, target and redshift
scaling, validity domain), the M-sigma power law fitted on the same training mocks, metrics and
a SHA-256 digest. No pickle is used anywhere.

>>> bundle = ModelBundle.read("model.asdf")          # doctest: +SKIP
>>> nets = bundle.build_networks()                    # doctest: +SKIP
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import asdf
import numpy as np
from asdf.exceptions import AsdfConversionWarning
from asdf.extension import Converter

from ..tags import MODEL_BUNDLE_TAG

__all__ = [
    "BUNDLED_MODEL_NAME",
    "ModelBundle",
    "ModelBundleConverter",
    "ModelFileError",
    "bundled_model_path",
    "check_usable",
    "plain",
    "scale_log_mass",
    "scale_redshift",
    "unscale_log_mass",
    "unscale_log_mass_std",
    "untrained_bundle",
]

BUNDLED_MODEL_NAME = "cnn2d_default.asdf"

_DICT_FIELDS = (
    "network_config",
    "feature_config",
    "cylinder",
    "target_scaling",
    "training",
    "m_sigma",
    "metrics",
    "domain",
)
_REQUIRED_SCALING = ("log_m_min", "log_m_max", "z_min", "z_max")


class ModelFileError(ValueError):
    """A model file that cannot be used: not a model bundle, truncated, altered or incomplete."""


def plain(obj: Any) -> Any:
    """Convert nested containers of numpy scalars/arrays and tuples into plain Python objects.

    Dicts keep their (string) keys, tuples and arrays become lists, numpy scalars become
    ``int``/``float``/``bool``/``str``. Anything else is converted with ``str``.
    """
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj)
    if obj is None:
        return obj
    return str(obj)  # also turns str subclasses (e.g. torch.__version__) into plain str


def _canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def _digest(bundle: ModelBundle) -> str:
    """SHA-256 over the arrays (member order, sorted keys) and the canonical JSON of the dicts."""
    h = hashlib.sha256()
    h.update(f"members={len(bundle.state_dicts)};".encode())
    for i, sd in enumerate(bundle.state_dicts):
        for key in sorted(sd):
            arr = np.ascontiguousarray(sd[key])
            le = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
            h.update(f"{i}:{key}:{le.dtype.str}:{list(arr.shape)};".encode())
            h.update(le.tobytes())
    meta = {name: getattr(bundle, name) for name in _DICT_FIELDS}
    meta["package_version"] = bundle.package_version
    h.update(_canonical_json(meta))
    return h.hexdigest()


def _package_version() -> str:
    try:
        from .._version import version
    except ImportError:  # pragma: no cover - only without an install
        return "0.0.0"
    return version


@dataclass
class ModelBundle:
    """A trained model with everything needed to use it.

    Attributes
    ----------
    network_config : dict
        Input of :func:`astro_cnnmass.model.networks.build_network`.
    state_dicts : list of dict of str to numpy.ndarray
        Network weights, one state dict per ensemble member.
    feature_config : dict
        ``FeatureConfig.to_dict()`` of the images the network was trained on.
    cylinder : dict
        ``{"aperture_mpch": float, "v_cut_kms": float}`` (Mpc/h physical, km/s).
    target_scaling : dict
        ``log_m_min``, ``log_m_max`` (log10 M200c [Msun/h]) mapped linearly to [-1, 1];
        ``z_min``, ``z_max`` (redshift, mapped to [-1, 1]; 0 when equal); ``calibration``
        (``{"std_scale": 1.0}``, factor applied to predicted standard deviations).
    training : dict
        Summary of the training run (sizes, ranges, generator version/seed/cosmology, command,
        epochs, seeds, history).
    m_sigma : dict
        M-sigma power law fitted on the same training mocks: ``alpha``, ``log_sigma15``
        (log10 km/s), ``pivot_log_mass`` (log10 M200c), ``scatter`` (dex in log sigma)
        (``astro_cnnmass.classical.MSigmaPowerLaw.to_dict()``).
    metrics : dict
        Metrics (see :mod:`astro_cnnmass.model.evaluation`); ``metrics["scatter_dex"]`` is the
        calibrated scatter used when the model gives no per-cluster uncertainty.
    domain : dict
        ``z_min``, ``z_max``, ``log_m_min``, ``log_m_max``, ``n_min_galaxies``.
    package_version : str
        astro_cnnmass version that wrote the bundle.
    sha256 : str
        Digest of arrays and dicts (computed when empty; checked when read from a file).
    """

    network_config: dict
    state_dicts: list[dict[str, np.ndarray]]
    feature_config: dict
    cylinder: dict
    target_scaling: dict
    training: dict = field(default_factory=dict)
    m_sigma: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    domain: dict = field(default_factory=dict)
    package_version: str = ""
    sha256: str = ""

    def __post_init__(self) -> None:
        for name in _DICT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise ModelFileError(f"ModelBundle.{name} must be a dict, got {type(value)}")
            setattr(self, name, plain(value))
        if not isinstance(self.state_dicts, list | tuple) or not self.state_dicts:
            raise ModelFileError("ModelBundle.state_dicts must be a non-empty list of dicts")
        self.state_dicts = [
            {str(k): np.asarray(v) for k, v in sd.items()} for sd in self.state_dicts
        ]
        self.target_scaling.setdefault("calibration", {"std_scale": 1.0})
        missing = [k for k in _REQUIRED_SCALING if k not in self.target_scaling]
        if missing:
            raise ModelFileError(f"ModelBundle.target_scaling lacks key(s) {missing}")
        if not self.package_version:
            self.package_version = _package_version()
        if not self.sha256:
            self.sha256 = _digest(self)

    def __repr__(self) -> str:
        c = self.network_config
        return (
            f"<ModelBundle {c.get('arch')}/{c.get('head')} x{self.n_members} "
            f"cylinder={self.cylinder} log_m=[{self.target_scaling.get('log_m_min')}, "
            f"{self.target_scaling.get('log_m_max')}] sha256={self.sha256[:12]}...>"
        )

    # ------------------------------------------------------------------ properties
    @property
    def n_members(self) -> int:
        """Number of ensemble members."""
        return len(self.state_dicts)

    @property
    def head(self) -> str:
        """Output head of the networks (``"point"`` or ``"gaussian"``)."""
        return self.network_config.get("head", "point")

    def compute_sha256(self) -> str:
        """The SHA-256 digest of the current content (not stored)."""
        return _digest(self)

    def verify(self) -> None:
        """Raise :class:`ModelFileError` if the stored digest does not match the content."""
        actual = _digest(self)
        if actual != self.sha256:
            raise ModelFileError(
                f"model bundle digest mismatch (stored {self.sha256[:12]}..., content "
                f"{actual[:12]}...): the file was altered or corrupted"
            )

    def replace(self, **changes: Any) -> ModelBundle:
        """A copy with some fields changed and the digest recomputed (e.g. new ``metrics``)."""
        values = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}
        values.update(changes)
        values["sha256"] = ""
        return ModelBundle(**values)

    # ------------------------------------------------------------------ networks
    def build_networks(self, device: Any = None) -> list:
        """Rebuild the ensemble as torch modules in eval mode.

        Parameters
        ----------
        device : str or torch.device, optional
            Default: CUDA when available, else CPU.

        Returns
        -------
        list of astro_cnnmass.model.networks.CNNMassNet
        """
        import torch

        from .networks import build_network

        device = _resolve_device(device)
        nets = []
        for sd in self.state_dicts:
            net = build_network(self.network_config)
            state = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in sd.items()}
            try:
                net.load_state_dict(state)
            except RuntimeError as exc:
                raise ModelFileError(f"weights do not match the network config: {exc}") from exc
            nets.append(net.to(device).eval())
        return nets

    # ------------------------------------------------------------------ I/O
    def write(self, path: str | os.PathLike) -> Path:
        """Write the bundle to an ASDF file atomically (temporary file, then ``os.replace``).

        The digest is recomputed before writing.

        Returns
        -------
        pathlib.Path
        """
        path = Path(path)
        self.sha256 = _digest(self)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
        os.close(fd)
        try:
            asdf.AsdfFile({"model": self}).write_to(tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def read(cls, path: str | os.PathLike) -> ModelBundle:
        """Read and check a model file.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        ModelBundle

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        ModelFileError
            If the file is not an ASDF model bundle (no ``"model"`` key, wrong tag), is truncated,
            fails the schema (missing keys), or its content does not match its SHA-256 digest.
        """
        from ..safe_asdf import UnsafeFileError, prescan

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"model file not found: {path}")
        if path.is_dir():
            raise ModelFileError(f"{path} is a directory, expected an ASDF model file")
        try:  # bound the cost of the file before asdf parses, validates or inflates it
            prescan(path, max_decompressed_bytes=MAX_MODEL_BYTES)
        except UnsafeFileError as exc:
            raise ModelFileError(f"refusing the model file: {exc}") from exc
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", AsdfConversionWarning)
                with asdf.config_context() as cfg:
                    cfg.validate_on_read = True  # schema check (asdf >= 4 skips it by default)
                    with asdf.open(
                        path, lazy_load=False, memmap=False, validate_checksums=True
                    ) as af:
                        if "model" not in af.tree:
                            raise ModelFileError(
                                f"{path} is an ASDF file but holds no 'model' entry: "
                                "not a model bundle"
                            )
                        obj = af["model"]
        except ModelFileError:
            raise
        except Exception as exc:  # asdf/yaml/jsonschema/IO errors
            raise ModelFileError(
                f"{path} is not a readable astro_cnnmass model file "
                f"(truncated, corrupted, foreign or failing the schema): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        problems = [str(w.message) for w in caught if issubclass(w.category, AsdfConversionWarning)]
        for w in caught:  # re-emit anything else (e.g. a plugin that failed to load)
            if not issubclass(w.category, AsdfConversionWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if not isinstance(obj, cls) and problems:
            raise ModelFileError(
                f"{path}: the model bundle could not be loaded (truncated, altered or "
                f"incomplete file): {problems[-1]}"
            )
        if not isinstance(obj, cls):
            raise ModelFileError(
                f"{path}: the 'model' entry is a {type(obj).__name__}, not a ModelBundle "
                f"(expected tag {MODEL_BUNDLE_TAG})"
            )
        try:
            check_usable(obj)
        except ModelFileError as exc:
            raise ModelFileError(f"{path}: {exc}") from exc
        return obj


def untrained_bundle(
    *,
    arch: str = "cnn2d",
    head: str = "gaussian",
    seed: int = 0,
    log_m_range: tuple[float, float] = (13.5, 15.5),
    z_range: tuple[float, float] = (0.01, 0.3),
    scatter_dex: float = 0.15,
) -> ModelBundle:
    """A complete bundle of the default architecture with freshly initialised (random) weights.

    For tests and benchmarks of the machinery (file format, batching, throughput), never for
    masses: its estimates are meaningless. The M–σ law is the Evrard et al. 2008
    (arXiv:astro-ph/0702241) dark-matter relation, σ_15 = 1083 km/s and α = 0.336.

    Parameters
    ----------
    arch, head : str
        ``"cnn2d"``/``"cnn1d"`` and ``"gaussian"``/``"point"``
        (:func:`astro_cnnmass.model.networks.default_network_config`).
    seed : int
        Torch seed of the initial weights.
    log_m_range, z_range : (float, float)
        Training range stored in the bundle (log10 Msun/h; redshift).
    scatter_dex : float
        ``metrics["scatter_dex"]``, the fallback std of a point model (dex).

    Returns
    -------
    ModelBundle
        One member, no calibration and no out-of-domain model.
    """
    import torch

    from ..classical import EVRARD08_ALPHA, EVRARD08_SIGMA15
    from .networks import build_network, default_network_config

    cfg = default_network_config(arch, head)
    torch.manual_seed(seed)
    state = {k: t.numpy().copy() for k, t in build_network(cfg).state_dict().items()}
    kind = "1d" if arch == "cnn1d" else "2d"
    ranges = {
        "log_m_min": float(log_m_range[0]),
        "log_m_max": float(log_m_range[1]),
        "z_min": float(z_range[0]),
        "z_max": float(z_range[1]),
    }
    return ModelBundle(
        network_config=cfg,
        state_dicts=[state],
        feature_config={
            "kind": kind,
            "n_v": 48,
            "n_R": 48,
            "aperture_mpch": 1.6,
            "v_cut_kms": 2200.0,
            "bandwidth": 0.25,
        },
        cylinder={"aperture_mpch": 1.6, "v_cut_kms": 2200.0},
        target_scaling=dict(ranges),
        m_sigma={
            "alpha": EVRARD08_ALPHA,
            "log_sigma15": math.log10(EVRARD08_SIGMA15),
            "pivot_log_mass": 15.0,
            "scatter": 0.07,
        },
        metrics={"scatter_dex": float(scatter_dex)},
        domain={**ranges, "n_min_galaxies": 10},
    )


def bundled_model_path() -> Path:
    """Path of the model shipped with the package (``astro_cnnmass/data/cnn2d_default.asdf``).

    Raises
    ------
    FileNotFoundError
        If the bundled model has not been trained/installed yet.
    """
    path = Path(__file__).parent.parent / "data" / BUNDLED_MODEL_NAME
    if not path.exists():
        raise FileNotFoundError(
            f"the bundled model {path} does not exist yet. Train one with "
            "'astro-cnnmass train MOCKS.asdf --model cnn2d --out MODEL.asdf' and pass that path "
            f"(DynamicalMassEstimator.load(path)), or copy it to {path}."
        )
    return path


def _resolve_device(device: Any = None):
    """The torch device for ``device`` (default CUDA when available, else CPU).

    Raises
    ------
    ValueError
        ``device`` is not a torch device name, or names a CUDA / MPS device this machine does
        not have (raised at load time, not at the first estimate).
    """
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device must be a torch device such as 'cpu', 'cuda' or 'cuda:0', got {device!r}"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available on this machine")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r}: expected 'cpu', 'cuda[:k]' or 'mps'")
    return dev


def check_usable(bundle: ModelBundle) -> None:
    """Refuse a bundle that passes its digest but cannot give meaningful masses.

    See ``astro_cnnmass.model.bundle_checks.usability_problem`` for what is checked
    (finite weights, positive and physical cuts and scales, a grid that fits the network, one
    dry forward pass).

    Raises
    ------
    ModelFileError
        Naming the first entry that is wrong and what was expected.
    """
    from .bundle_checks import usability_problem

    problem = usability_problem(bundle)
    if problem:
        raise ModelFileError(problem)


#: Ceiling on the decompressed size of a model file's blocks, bytes.
MAX_MODEL_BYTES = 512 * 2**20


# ---------------------------------------------------------------------- scaling helpers
def scale_log_mass(log_m: np.ndarray, scaling: dict) -> np.ndarray:
    """Map log10 M200c [Msun/h] linearly from [log_m_min, log_m_max] to [-1, 1]."""
    lo, hi = scaling["log_m_min"], scaling["log_m_max"]
    return (2.0 * np.asarray(log_m, dtype=float) - lo - hi) / (hi - lo)


def unscale_log_mass(y: np.ndarray, scaling: dict) -> np.ndarray:
    """Inverse of :func:`scale_log_mass`: scaled value -> log10 M200c [Msun/h]."""
    lo, hi = scaling["log_m_min"], scaling["log_m_max"]
    return 0.5 * (np.asarray(y, dtype=float) * (hi - lo) + lo + hi)


def unscale_log_mass_std(std_scaled: np.ndarray, scaling: dict) -> np.ndarray:
    """Standard deviation of the scaled target -> dex."""
    return np.asarray(std_scaled, dtype=float) * 0.5 * (scaling["log_m_max"] - scaling["log_m_min"])


def scale_redshift(z: np.ndarray, scaling: dict) -> np.ndarray:
    """Map redshift linearly from [z_min, z_max] to [-1, 1] (0 when the range is empty)."""
    z = np.asarray(z, dtype=float)
    lo, hi = scaling["z_min"], scaling["z_max"]
    if not hi > lo:
        return np.zeros_like(z)
    return (2.0 * z - lo - hi) / (hi - lo)


# ---------------------------------------------------------------------- ASDF converter
class ModelBundleConverter(Converter):
    """ASDF converter for :class:`ModelBundle` (tag ``model_bundle-1.0.0``)."""

    tags = (MODEL_BUNDLE_TAG,)
    types = ("astro_cnnmass.model.bundle.ModelBundle",)

    def to_yaml_tree(self, obj: ModelBundle, tag: str, ctx: Any) -> dict:
        tree = {name: copy.deepcopy(getattr(obj, name)) for name in _DICT_FIELDS}
        tree["state_dicts"] = [
            {k: np.ascontiguousarray(v) for k, v in sd.items()} for sd in obj.state_dicts
        ]
        tree["package_version"] = obj.package_version
        tree["sha256"] = obj.sha256
        return tree

    def from_yaml_tree(self, node: dict, tag: str, ctx: Any) -> ModelBundle:
        required = (*_DICT_FIELDS, "state_dicts", "package_version", "sha256")
        missing = [k for k in required if k not in node]
        if missing:
            raise ModelFileError(f"model bundle lacks required key(s) {missing}")
        sha = node["sha256"]
        if not isinstance(sha, str) or len(sha) != 64:
            raise ModelFileError("model bundle 'sha256' must be a 64-character hex string")
        try:
            state_dicts = [
                {str(k): np.array(v, copy=True) for k, v in sd.items()}
                for sd in node["state_dicts"]
            ]
        except Exception as exc:
            raise ModelFileError(f"cannot read the model weights: {exc}") from exc
        bundle = ModelBundle(
            network_config=_from_tree(node["network_config"]),
            state_dicts=state_dicts,
            feature_config=_from_tree(node["feature_config"]),
            cylinder=_from_tree(node["cylinder"]),
            target_scaling=_from_tree(node["target_scaling"]),
            training=_from_tree(node["training"]),
            m_sigma=_from_tree(node["m_sigma"]),
            metrics=_from_tree(node["metrics"]),
            domain=_from_tree(node["domain"]),
            package_version=str(node["package_version"]),
            sha256=sha,
        )
        bundle.verify()
        return bundle


def _from_tree(obj: Any) -> Any:
    """Turn an ASDF/YAML node into plain Python containers (floats stay floats, NaN stays NaN)."""
    if isinstance(obj, dict):
        return {str(k): _from_tree(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_from_tree(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return float("nan")
    return obj
