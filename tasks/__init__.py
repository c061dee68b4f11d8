"""pmf stage logic: plain typed functions, one stage per module.

Nothing heavy is imported here: TensorFlow, Great Expectations and MLflow are imported by the
modules that use them, so `import tasks.data.preprocess` (what serving needs) stays light.
"""
