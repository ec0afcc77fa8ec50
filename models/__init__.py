"""Intent models: training/export (train.py), evaluation (evaluate.py) and the versioned ONNX models
(``<name>/<version>/model.onnx`` + ``manifest.json``). Training-only code: the job imports none of it."""
