"""The markers of tests/conftest.py: what gets them, and that the slow list names tests that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import conftest

ROOT = Path(__file__).resolve().parents[1]


class Item:
    def __init__(self, nodeid: str, *fixturenames: str):
        self.nodeid, self.fixturenames, self.marks = nodeid, list(fixturenames), set()

    def add_marker(self, mark):
        self.marks.add(mark.name)


def marks(nodeid: str, *fixturenames: str) -> set[str]:
    item = Item(nodeid, *fixturenames)
    conftest.pytest_collection_modifyitems(None, [item])
    return item.marks


def test_markers_follow_from_the_fixtures_and_the_folder():
    # pytest lists every fixture a test needs, those its fixtures request included (`api` -> ... -> `triton`).
    assert marks("tests/gateway/api/test_api.py::test_x", "api", "gateway_settings", "triton") == {"triton"}
    assert marks("tests/benchmarks/test_eval_voice.py::test_quick_evaluation", "triton", "data_dir") == {
        "triton", "slow"}
    assert marks("tests/gateway/api/test_demo_browser.py::test_y", "browser", "triton") == {
        "browser", "triton", "slow"}
    assert marks("tests/training/test_train_voice.py::test_z", "trained") == {"training", "slow"}
    assert marks("tests/gateway/pipeline/test_stt.py::test_w", "whisper_base") == {"slow"}
    assert marks("tests/gateway/pipeline/test_live.py::test_v", "anyio_backend") == set()


def test_in_this_session_triton_marks_exactly_the_tests_that_request_the_server(request):
    for item in request.session.items:
        marked = item.get_closest_marker("triton") is not None
        # test_launcher.py starts servers of its own and is marked in its module.
        assert marked == ("triton" in item.fixturenames) or item.nodeid.startswith(
            "tests/gateway/triton/test_launcher.py"), item.nodeid


@pytest.mark.parametrize("prefix", sorted(conftest.SLOW))
def test_every_slow_entry_names_an_existing_test(prefix):
    path, _, name = prefix.partition("::")
    assert (ROOT / path).is_file() or (path.endswith("/") and (ROOT / path).is_dir()), \
        f"{path} is gone: update SLOW in tests/conftest.py"
    if name:
        assert re.search(rf"^(async )?def {re.escape(name)}", (ROOT / path).read_text(), re.M), \
            f"no test {name}* in {path}: update SLOW in tests/conftest.py"
