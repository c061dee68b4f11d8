"""The MLflow store and the model registry: tracking calls, registration, aliases and promotion.

`tracking` (every MLflow call) · `register` · `lifecycle` (aliases, history, lock, rollback) · `promotion` (gates).
"""
