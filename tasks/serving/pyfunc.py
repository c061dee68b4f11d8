"""The MLflow pyfunc of a pmf model, logged as "models from code" (no pickle: loading runs this file).

Artifacts: the TFLite model, the fitted preprocessor and metadata (see tasks.serving.package). It
predicts raw rows exactly as they appear in the CSV and never imports TensorFlow. Loading checks
every file against the manifest the package carries (IntegrityError on any difference).
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.pyfunc import PythonModel


class PmfModel(PythonModel):
    def load_context(self, context):
        from tasks.serving.package import PackagedModel

        self.model = PackagedModel.load(Path(context.artifacts["package"]))

    def predict(self, context, model_input, params=None):
        import pandas as pd

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.model.predict(frame).tolist()


mlflow.models.set_model(PmfModel())
