"""A model version on disk (docs/contracts.md §3): ``models/<name>/<version>/`` holds ``model.onnx`` and
``manifest.json``; ``<name>/CURRENT`` names the version in force and ``<name>/SHADOW`` a candidate scored
in shadow. :class:`ModelManifest` is what the scorer needs of the manifest. Scoring and finding versions:
``udfs/scoring.py`` (which re-exports these names)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from udfs.features import feature_indices
from udfs.noise import DEFAULT_NOISE_CONFIG, NoiseConfig

#: The models folder of this checkout (``$INTENTFLOW_MODELS_DIR`` overrides it: :func:`models_dir`).
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


def models_dir() -> Path:
    """``$INTENTFLOW_MODELS_DIR`` or :data:`DEFAULT_MODELS_DIR`, read at the call (never at import)."""
    from udfs.settings import path_settings

    return path_settings().models_dir


#: The model the job uses unless configured otherwise.
DEFAULT_MODEL_NAME = "intent-lr"

#: The manifest's file name inside a version folder.
MANIFEST_FILE = "manifest.json"

#: ``<models>/<name>/CURRENT``: the version in force, one integer (written by the promotion gate,
#: models/gate_cmd.py). Without it the highest version is in force.
CURRENT_FILE = "CURRENT"

#: ``<models>/<name>/SHADOW``: a candidate version scored in shadow beside the one in force (one integer);
#: see :meth:`ReloadingScorer.take_shadow_counters`.
SHADOW_FILE = "SHADOW"

#: Two scores of a row "differ" in shadow counts when ``|a - b|`` exceeds this (udfs.gate.ShadowCounts).
SHADOW_TOLERANCE = 0.05


class ModelError(ValueError):
    """A model folder, manifest or ONNX file is unusable (missing field, wrong shape, sha256 mismatch)."""


@dataclass(frozen=True)
class ModelManifest:
    """The parts of ``manifest.json`` the scorer needs (``raw`` keeps the whole document).

    Attributes:
        name: model name, e.g. ``intent-lr``.
        version: integer version (the folder name).
        directory: the version folder.
        file: ONNX file name inside ``directory``.
        sha256: hex sha256 of the ONNX file.
        features: input feature names, in the model's input column order.
        input_name: name of the ONNX input (``float32[N, len(features)]``).
        output_name: name of the ONNX output (``float32[N]``, ``[N, 1]``, or ``[N, 2]`` class
            probabilities of which column 1 is used).
    """

    name: str
    version: int
    directory: Path
    file: str
    sha256: str
    features: tuple[str, ...]
    input_name: str
    output_name: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def model_version(self) -> str:
        """``"<name>/<version>"``, the string every action carries, e.g. ``intent-lr/1``."""
        return f"{self.name}/{self.version}"

    @classmethod
    def load(cls, path: str | Path, noise_config: NoiseConfig = DEFAULT_NOISE_CONFIG) -> "ModelManifest":
        """Read a manifest from ``path`` (the ``manifest.json`` or its folder) and check it against the
        job's noise filter (:meth:`check_noise`).

        Raises:
            FileNotFoundError: no manifest there.
            ModelError: a required field is missing or malformed, a feature name is unknown, or the
                model was trained behind a different noise filter.
        """
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_FILE
        raw = json.loads(path.read_text(encoding="utf-8"))
        try:
            names = tuple(f["name"] if isinstance(f, dict) else str(f) for f in raw["features"])
            manifest = cls(
                name=str(raw["name"]),
                version=int(raw["version"]),
                directory=path.parent,
                file=str(raw.get("file", "model.onnx")),
                sha256=str(raw["sha256"]).lower(),
                features=names,
                input_name=str(raw["input"]["name"]),
                output_name=str(raw["output"]["name"]),
                raw=raw,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{path}: malformed manifest ({type(exc).__name__}: {exc})") from None
        try:
            feature_indices(manifest.features)
        except KeyError as exc:
            raise ModelError(f"{path}: {exc.args[0]} (not in udfs.features.FEATURES)") from None
        manifest.check_noise(noise_config)
        return manifest

    def check_noise(self, noise_config: NoiseConfig = DEFAULT_NOISE_CONFIG) -> None:
        """The noise filter the model was trained behind (manifest ``noise_config``, written by the
        trainers) must be the one the job filters with: features of events the job drops, or keeps,
        differently from training would not mean what the model learnt. A manifest without
        ``noise_config`` (UCI-trained versions before it was recorded) is not checked.

        Raises:
            ModelError: the manifest's noise configuration differs from ``noise_config`` (the fields named).
        """
        recorded = self.raw.get("noise_config")
        if recorded is None:
            return
        expected = dataclasses.asdict(noise_config)
        if not isinstance(recorded, dict):
            raise ModelError(f"{self.model_version}: manifest noise_config must be an object, got {recorded!r}")
        differ = sorted(k for k in expected.keys() | recorded.keys() if recorded.get(k) != expected.get(k))
        if differ:
            raise ModelError(f"{self.model_version}: trained with a different noise filter than the job's: "
                             + ", ".join(f"{k} {recorded.get(k)!r} (job {expected.get(k)!r})" for k in differ))


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
