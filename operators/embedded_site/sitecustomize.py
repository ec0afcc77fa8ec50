"""Imported by CPython at start-up inside Flink's JVM only (this folder is on the PYTHONPATH that
operators.layout.flink_process_env gives the JVM; no other process has it on sys.path).

In thread mode Flink embeds CPython in the JVM (PEMJA), and each task thread gets its own Python
thread state. onnxruntime's pybind11 extension calls ``PyGILState_Ensure`` while it initialises; on a
task thread other than the one that initialised the interpreter that call waits for the GIL its own
thread already holds, and the job hangs in ``open()`` (seen here with gdb: ``take_gil`` under
``PyInit_onnxruntime_pybind11_state``). Importing onnxruntime here, on the initialising thread,
loads the extension once, before any operator opens.
"""
try:
    import onnxruntime  # noqa: F401
except ImportError:  # a job without the model stack still runs
    pass
