"""Hyper-parameter search: settings, space, one trial, the ask/tell loop (Optuna)."""
