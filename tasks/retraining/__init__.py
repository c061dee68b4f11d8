"""Retraining: which batches are new (by content hash), the window of older data trained on with them,
and whether the production model's weights can start the new training (warm start)."""
