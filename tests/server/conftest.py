"""The slow tests of this folder use the session's real local server (`local_server`, tests/conftest.py)."""
