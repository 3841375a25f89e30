import pytest


@pytest.fixture(autouse=True)
def _every_model_test_on_one_thread(one_thread):
    """Model tests run on one CPU thread (see ``one_thread`` in tests/conftest.py)."""
