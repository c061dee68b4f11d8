"""The session's real local server (tests.support.local_server), for the tests of this folder."""

from tests.support.local_server import local_server  # noqa: F401 (a fixture: pytest finds it imported here)
