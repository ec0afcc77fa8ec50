"""Intent scoring with an ONNX model loaded through its manifest (docs/contracts.md §3).

A model lives in ``models/<name>/<version>/`` as ``model.onnx`` + ``manifest.json`` (written by
``models/train.py``). The manifest names the features the model takes, in its input order, out of
:data:`udfs.features.FEATURES`; :class:`IntentScorer` selects them from the full session feature
vector by name, so the job always builds the full vector and any model version can score it.

* :class:`IntentScorer`: verifies the file's sha256, opens ONE onnxruntime ``InferenceSession``
  (one intra-op and one inter-op thread, sequential execution: the job runs one scorer per
  parallel subtask on a shared 2-core machine, and a thread pool would spin against the other
  operators) and scores a micro-batch ``float32[N, N_FEATURES]`` in one ``run`` call.
* :class:`ModelRegistry`: finds the versions of a model under a models folder (``latest(name)``).
* :class:`ReloadingScorer`: wraps the latest version and swaps to a newer one (or to a changed
  manifest) without restart, checking the folder at most every ``check_interval_s``.

The manifest, the folder layout and its constants are in ``udfs/model_manifest.py`` (re-exported here).

No scikit-learn here: only numpy and onnxruntime.
"""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np

from udfs.features import FEATURE_DTYPE, N_FEATURES, feature_indices
from udfs.model_manifest import (  # noqa: F401 - re-exported: the scorer's public API
    CURRENT_FILE,
    DEFAULT_MODEL_NAME,
    DEFAULT_MODELS_DIR,
    MANIFEST_FILE,
    SHADOW_FILE,
    SHADOW_TOLERANCE,
    ModelError,
    ModelManifest,
    models_dir,
    sha256_file,
)

log = logging.getLogger(__name__)


def session_options():
    """onnxruntime options of every scorer: 1 intra-op thread, 1 inter-op thread, sequential, no spinning."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


class IntentScorer:
    """One model version, ready to score micro-batches.

    Args:
        manifest: a :class:`ModelManifest`, or the path of a manifest / version folder.

    Raises:
        FileNotFoundError: the manifest or ONNX file is missing.
        ModelError: sha256 mismatch, or the ONNX input/output does not match the manifest.
    """

    def __init__(self, manifest: ModelManifest | str | Path) -> None:
        import onnxruntime as ort

        self.manifest = manifest if isinstance(manifest, ModelManifest) else ModelManifest.load(manifest)
        model_path = self.manifest.directory / self.manifest.file
        blob = model_path.read_bytes()
        actual = hashlib.sha256(blob).hexdigest()
        if actual != self.manifest.sha256:
            raise ModelError(f"{model_path}: sha256 {actual} does not match manifest {self.manifest.sha256}")
        self._session = ort.InferenceSession(blob, sess_options=session_options(),
                                             providers=["CPUExecutionProvider"])
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name for o in self._session.get_outputs()}
        spec = inputs.get(self.manifest.input_name)
        if spec is None or len(inputs) != 1:
            raise ModelError(f"{model_path}: expected one input {self.manifest.input_name!r}, has {list(inputs)}")
        width = spec.shape[1] if len(spec.shape) == 2 else None
        if width != len(self.manifest.features) or spec.type != "tensor(float)":
            raise ModelError(f"{model_path}: input {spec.name} is {spec.type}{spec.shape}, manifest says "
                             f"float[N, {len(self.manifest.features)}]")
        if self.manifest.output_name not in outputs:
            raise ModelError(f"{model_path}: no output {self.manifest.output_name!r} (has {sorted(outputs)})")
        idx = feature_indices(self.manifest.features)
        # None = the model takes the full vector in FEATURES order: no column selection needed
        self._columns = None if np.array_equal(idx, np.arange(N_FEATURES)) else idx
        self._input_name = self.manifest.input_name
        self._output_names = [self.manifest.output_name]

    @property
    def model_version(self) -> str:
        """``"<name>/<version>"`` of the loaded model, e.g. ``intent-lr/1``."""
        return self.manifest.model_version

    @property
    def features(self) -> tuple[str, ...]:
        """Names of the features the model uses, in its input order."""
        return self.manifest.features

    def score(self, batch: np.ndarray) -> np.ndarray:
        """Intent scores of a micro-batch of session feature vectors, in ONE onnxruntime call.

        Args:
            batch: ``float32[N, N_FEATURES]`` full feature vectors in FEATURES order (other float
                dtypes are converted); ``N`` may be 0.

        Returns:
            ``float32[N]`` purchase-intent probabilities in [0, 1].

        Raises:
            ValueError: ``batch`` is not 2-D with ``N_FEATURES`` columns.
        """
        batch = np.asarray(batch, dtype=FEATURE_DTYPE)
        if batch.ndim != 2 or batch.shape[1] != N_FEATURES:
            raise ValueError(f"expected a float32 array of shape (N, {N_FEATURES}), got {batch.shape}")
        if batch.shape[0] == 0:
            return np.empty(0, dtype=np.float32)
        x = batch if self._columns is None else batch[:, self._columns]
        (out,) = self._session.run(self._output_names, {self._input_name: np.ascontiguousarray(x)})
        if out.ndim == 2 and out.shape[1] == 2:
            out = out[:, 1]
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def score_one(self, vector: np.ndarray) -> float:
        """Score one feature vector of shape ``(N_FEATURES,)`` (a batch of one)."""
        return float(self.score(np.asarray(vector, dtype=FEATURE_DTYPE).reshape(1, -1))[0])


class ModelRegistry:
    """The model versions under a models folder (``<root>/<name>/<version>/manifest.json``).

    Args:
        root: the models folder; default :func:`models_dir`.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else models_dir()

    def versions(self, name: str) -> list[int]:
        """Integer versions of ``name`` that have a manifest and an ONNX file, ascending."""
        base = self.root / name
        if not base.is_dir():
            return []
        found = []
        for child in base.iterdir():
            if child.name.isdigit() and (child / MANIFEST_FILE).is_file() and any(child.glob("*.onnx")):
                found.append(int(child.name))
        return sorted(found)

    def manifest_path(self, name: str, version: int | None = None) -> Path:
        """Path of the manifest of ``name``/``version`` (the version in force when None: the one named by
        ``<name>/CURRENT`` when that file exists, else the highest).

        Raises:
            FileNotFoundError: no such model or version.
            ModelError: ``CURRENT`` does not hold a version number.
        """
        if version is None:
            current = self.current_version(name)
            if current is not None:
                version = current
        if version is None:
            versions = self.versions(name)
            if not versions:
                raise FileNotFoundError(f"no versions of model {name!r} under {self.root}")
            version = versions[-1]
        path = self.root / name / str(version) / MANIFEST_FILE
        if not path.is_file():
            raise FileNotFoundError(path)
        return path

    def current_version(self, name: str) -> int | None:
        """The version named by ``<name>/CURRENT``, or None when there is no such file.

        Raises:
            ModelError: the file does not hold an integer.
        """
        path = self.root / name / CURRENT_FILE
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        if not text.isdigit():
            raise ModelError(f"{path}: expected a version number, got {text[:40]!r}")
        return int(text)

    def latest(self, name: str = DEFAULT_MODEL_NAME) -> ModelManifest:
        """Manifest of the version of ``name`` in force (``CURRENT``, else the highest).

        Raises:
            FileNotFoundError: no version exists.
            ModelError: the manifest is malformed.
        """
        return ModelManifest.load(self.manifest_path(name))

    def load(self, name: str = DEFAULT_MODEL_NAME, version: int | None = None) -> IntentScorer:
        """An :class:`IntentScorer` of ``name``/``version`` (latest when None)."""
        return IntentScorer(self.manifest_path(name, version))


class ReloadingScorer:
    """A scorer that follows the latest version of a model without restart.

    :meth:`maybe_reload` (called by :meth:`score_with_version` at most every ``check_interval_s``) looks
    for a higher version or a changed manifest / ONNX file of the current one and swaps to it once it
    has loaded and verified; a broken new version (e.g. sha256 mismatch of a half-copied file) is logged
    and skipped (the current model keeps scoring) until its files change again.

    Args:
        name: model name.
        registry: where to look; default ``ModelRegistry()``.
        version: pin this version (no reload to newer versions; a changed manifest is still picked up).
        check_interval_s: minimum seconds between two looks at the folder. Default 5 s: our choice; one
            ``stat`` per version folder every 5 s is negligible and a new model is live within 5 s.

    Raises:
        FileNotFoundError / ModelError: (at construction) the initial model cannot be loaded.
    """

    def __init__(self, name: str = DEFAULT_MODEL_NAME, registry: ModelRegistry | None = None,
                 version: int | None = None, check_interval_s: float = 5.0,
                 clock=time.monotonic) -> None:
        self.name = name
        self.registry = registry or ModelRegistry()
        self.pinned_version = version
        self.check_interval_s = check_interval_s
        self._clock = clock
        path = self.registry.manifest_path(name, version)
        self._scorer = IntentScorer(path)
        self._signature = self._stat(path)
        self._rejected: tuple | None = None
        self._next_check = clock() + check_interval_s
        self.reloads = 0
        self._shadow: IntentScorer | None = None  # candidate scored beside the model in force (SHADOW file)
        self._shadow_key: tuple | None = None
        self._shadow_counts: dict[str, int] = {}
        self._load_shadow()

    def _load_shadow(self) -> None:
        """(Re)load the shadow candidate named by ``<name>/SHADOW`` when that file changed; a missing file
        or the version in force itself turns shadow scoring off; a broken one is logged and skipped."""
        path = self.registry.root / self.name / SHADOW_FILE
        try:
            key = (path.stat().st_mtime_ns, path.read_text(encoding="utf-8").strip())
        except FileNotFoundError:
            self._shadow, self._shadow_key = None, None
            return
        if key == self._shadow_key:
            return
        self._shadow_key = key
        self._shadow = None
        try:
            shadow = IntentScorer(self.registry.manifest_path(self.name, int(key[1])))
        except Exception as exc:  # noqa: BLE001 - never stop scoring for a candidate
            log.warning("shadow model %s/%s not loaded: %s", self.name, key[1], exc)
            return
        if shadow.model_version != self._scorer.model_version:
            self._shadow = shadow

    @property
    def shadow_version(self) -> str | None:
        """``"<name>/<version>"`` of the candidate scored in shadow, or None."""
        return self._shadow.model_version if self._shadow is not None else None

    def take_shadow_counters(self) -> dict[str, int]:
        """Shadow counts since the last call, as job counters (``{p}stats`` in Redis), then reset:
        ``shadow_rows:<candidate>`` rows scored by both, ``shadow_differ:<candidate>`` rows whose scores differ
        by more than :data:`SHADOW_TOLERANCE`, ``shadow_abs_diff_micro:<candidate>`` the sum of ``|a - b|`` in
        millionths (integer, as the counters are HINCRBY)."""
        out, self._shadow_counts = self._shadow_counts, {}
        return out

    @staticmethod
    def _stat(path: Path) -> tuple:
        """Signature of a version folder: path, mtime and size of its manifest and ONNX files."""
        files = [path] + sorted(path.parent.glob("*.onnx"))
        return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)

    @property
    def scorer(self) -> IntentScorer:
        """The scorer currently in use."""
        return self._scorer

    @property
    def model_version(self) -> str:
        """``"<name>/<version>"`` of the model currently in use."""
        return self._scorer.model_version

    def maybe_reload(self, force: bool = False) -> bool:
        """Swap to a newer version / changed manifest if one is there; True when swapped.

        Checks the folder only when ``check_interval_s`` has passed since the last check (or ``force``).
        """
        now = self._clock()
        if not force and now < self._next_check:
            return False
        self._next_check = now + self.check_interval_s
        try:
            path = self.registry.manifest_path(self.name, self.pinned_version)
            signature = self._stat(path)
        except FileNotFoundError:
            return False
        self._load_shadow()
        if signature == self._signature or signature == self._rejected:
            return False
        try:
            scorer = IntentScorer(path)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types; never stop scoring
            log.warning("model %s not loaded, keeping %s: %s", path, self.model_version, exc)
            self._rejected = signature
            return False
        log.info("model swapped: %s -> %s", self.model_version, scorer.model_version)
        self._scorer = scorer
        self._signature = signature
        self.reloads += 1
        return True

    def score_with_version(self, batch: np.ndarray) -> tuple[np.ndarray, str]:
        """Check for a new model (rate-limited), then score the batch in one call.

        Returns:
            ``(float32[N] scores, model_version)`` where ``model_version`` is the version that
            produced these scores (put it into each action).
        """
        self.maybe_reload()
        scorer = self._scorer
        scores = scorer.score(batch)
        shadow = self._shadow
        if shadow is not None and shadow.model_version != scorer.model_version and len(scores):
            diff = np.abs(shadow.score(batch).astype(np.float64) - scores)
            counts, v = self._shadow_counts, shadow.model_version
            counts["shadow_rows:" + v] = counts.get("shadow_rows:" + v, 0) + len(diff)
            counts["shadow_differ:" + v] = counts.get("shadow_differ:" + v, 0) + int((diff > SHADOW_TOLERANCE).sum())
            counts["shadow_abs_diff_micro:" + v] = (counts.get("shadow_abs_diff_micro:" + v, 0)
                                                    + int(round(float(diff.sum()) * 1e6)))
        return scores, scorer.model_version

    def score(self, batch: np.ndarray) -> np.ndarray:
        """Scores only (see :meth:`score_with_version`)."""
        return self.score_with_version(batch)[0]
