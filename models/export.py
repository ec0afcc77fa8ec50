"""ONNX export of a fitted model and the versioned folders it is written to.

A model version lives in ``<models-dir>/<name>/<version>/`` (``model.onnx``, ``manifest.json``,
``README.md``); the job finds and loads versions with ``udfs.scoring.ModelRegistry`` and
``udfs.scoring.IntentScorer``. Training-only: imports skl2onnx and onnx.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from models.fit import fold_calibration

ROOT = Path(__file__).resolve().parents[1]
#: The models folder of the repository (``--models-dir`` default).
MODELS_DIR = ROOT / "models"

#: Name of the model's input, ``float32[N, n_features]``.
INPUT_NAME = "features"
#: Name of the model's single output, ``float32[N]``: the calibrated probability of a later conversion.
OUTPUT_NAME = "intent_score"

#: ONNX opset of the export. 17: supported by skl2onnx 1.20 and onnxruntime 1.32.
TARGET_OPSET = 17


def export_onnx(model, n_inputs: int) -> bytes:
    """skl2onnx export without ZipMap, reduced to one output ``intent_score`` = P(class 1), ``float32[N]``.

    Args:
        model: a fitted sigmoid-calibrated model (:func:`make_estimator`; folded first by
            :func:`fold_calibration`, because skl2onnx 1.20 calibrates the base pipeline's
            probabilities where scikit-learn 1.9 calibrates its decision function: measured 0.39 apart)
            or a plain fitted classifier pipeline.
        n_inputs: number of input columns.

    The input is ``features: float32[N, n_inputs]``.
    """
    if hasattr(model, "calibrated_classifiers_"):
        model = fold_calibration(model)
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import convert_sklearn

    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(model, initial_types=[(INPUT_NAME, FloatTensorType([None, n_inputs]))],
                          options={id(model): {"zipmap": False}}, target_opset=TARGET_OPSET)
    prob_name = next(o.name for o in onx.graph.output if o.name.startswith("prob"))
    graph = onx.graph
    graph.initializer.append(helper.make_tensor("positive_class_index", TensorProto.INT64, [], [1]))
    graph.node.append(helper.make_node("Gather", [prob_name, "positive_class_index"], [OUTPUT_NAME], axis=1,
                                       name="select_positive_class"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [None]))
    onx = onnx.utils.Extractor(onx).extract_model([INPUT_NAME], [OUTPUT_NAME])
    onx.producer_name = "intentflow models/train.py (skl2onnx)"
    onx.graph.name = "intentflow_intent_score"  # the extractor names it with a random id: same bytes per fit
    onnx.checker.check_model(onx)
    return onx.SerializeToString()


def onnx_scores(blob: bytes, X: np.ndarray) -> np.ndarray:
    """Scores of ``X`` (used columns) by the ONNX model ``blob``, with the job's session options."""
    import onnxruntime as ort

    from udfs.scoring import session_options

    sess = ort.InferenceSession(blob, sess_options=session_options(), providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(X, dtype=np.float32)})[0]


def next_version(models_dir: Path, name: str) -> int:
    """1 + the highest integer version folder of ``name`` (1 when none)."""
    base = models_dir / name
    versions = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.is_dir() else []
    return max(versions, default=0) + 1
