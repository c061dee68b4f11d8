"""The model server behind `pmf serve` (see tasks.server.app). Imports nothing heavy, never TensorFlow."""
