"""The shipped model at prediction time: the package (LiteRT + preprocessor), the MLflow pyfunc and `pmf serve`.

`package` · `pyfunc` · `server` (ASGI app, alias watcher) · `request_schema` · `prediction_log`. Never imports TensorFlow.
"""
