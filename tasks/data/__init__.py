"""Data stages: load a table, infer its schema, validate it with Great Expectations, preprocess it.

`load` · `schema` (column roles, the single source of truth) · `validate` (GX suites) · `preprocess`.
"""
