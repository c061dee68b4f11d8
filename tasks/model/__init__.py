"""Model stages: build and train the tf_keras model, evaluate it, and judge it with the evaluation gate.

`builders` (MLP, CNN) · `train` · `evaluate` (metrics, plots) · `gates` · `tf_env` (one Keras per process).
"""
