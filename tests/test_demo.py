"""`run_demo`: a short run end to end (real service in a thread, the SDK, the report, the picture), and its pieces."""

from __future__ import annotations

import io
import math
import struct
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from rich.console import Console

from bandit_service.demo import ARMS, DemoResult, run_demo
from bandit_service.demo import run as demo
from bandit_service.demo.plot import ArmPosterior, PictureData, draw
from bandit_service.demo.server import THREAD_NAME

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header, after checking it starts and ends as a PNG does."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, str, Path]:
    """One 3-second demo for the whole module, with its temporary files under a directory of the test's own."""
    temp_root = tmp_path_factory.mktemp("tmp")
    out_dir = tmp_path_factory.mktemp("out")
    printed = io.StringIO()
    kept, tempfile.tempdir = tempfile.tempdir, str(temp_root)
    try:
        result = run_demo(duration_s=3.0, out_dir=out_dir, seed=7, console=Console(file=printed, width=120))
    finally:
        tempfile.tempdir = kept
    return result, printed.getvalue(), temp_root


def test_the_report_names_every_arm_and_is_printed(short_run: tuple[DemoResult, str, Path]) -> None:
    result, printed, _ = short_run
    for arm in ARMS:
        assert arm in result.report
    assert result.report.strip() in printed
    assert "Traffic on the best arm (orange, 7%)" in printed


def test_users_were_decided_and_rewarded_through_the_service(short_run: tuple[DemoResult, str, Path]) -> None:
    result, _, _ = short_run
    assert result.decisions > 0 and result.fallbacks == 0
    assert result.rewards == result.decisions  # every user's reward reached the service before the report
    assert sum(result.traffic.values()) == result.decisions
    assert 0.0 <= result.best_share_recent <= 1.0 and 0.0 <= result.best_share <= 1.0
    assert result.best_arm == "orange" and result.true_rates == ARMS


def test_the_final_weights_are_a_distribution_over_the_arms(short_run: tuple[DemoResult, str, Path]) -> None:
    result, _, _ = short_run
    assert set(result.weights) == set(ARMS)
    assert math.isclose(sum(result.weights.values()), 1.0, abs_tol=1e-6)
    assert all(w >= 0.0 for w in result.weights.values())


def test_the_picture_is_a_png_of_sensible_size(short_run: tuple[DemoResult, str, Path]) -> None:
    pytest.importorskip("matplotlib")
    result, printed, _ = short_run
    (picture,) = result.pictures
    width, height = png_size(picture)
    assert 800 <= width <= 3_000 and 300 <= height <= 2_000
    assert f"Picture: {picture}" in printed


def test_the_server_thread_and_temporary_files_are_gone(short_run: tuple[DemoResult, str, Path]) -> None:
    _, _, temp_root = short_run
    assert THREAD_NAME not in {t.name for t in threading.enumerate()}
    assert list(temp_root.iterdir()) == []


def test_without_matplotlib_there_is_no_picture_and_one_line_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib...` raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    data = PictureData(
        times_s=(0.0,),
        weights={"a": (0.5,), "b": (0.5,)},
        end_s=1.0,
        arms=(
            ArmPosterior(name="a", true_rate=0.1, trials=10, alpha=2.0, beta=10.0),
            ArmPosterior(name="b", true_rate=0.2, trials=10, alpha=3.0, beta=9.0),
        ),
        best="b",
        reweight_every_s=3.0,
    )
    assert draw(data, tmp_path) is None
    assert list(tmp_path.iterdir()) == []
    printed = io.StringIO()
    demo._summarize(
        DemoResult(
            experiment="x",
            report="",
            weights={"a": 0.5, "b": 0.5},
            true_rates={"a": 0.1, "b": 0.2},
            best_arm="b",
            pictures=(),
            decisions=10,
            fallbacks=0,
            rewards=10,
            traffic={"a": 5, "b": 5},
            best_share=0.5,
            best_share_recent=0.5,
            duration_s=1.0,
        ),
        recent_s=0.5,
        console=Console(file=printed, width=200),
    )
    assert "pip install 'bandit-service[demo]'" in printed.getvalue()


@pytest.mark.parametrize("duration_s", [0.0, -1.0, math.nan])
def test_a_duration_that_is_not_positive_is_refused(duration_s: float, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duration_s must be positive"):
        run_demo(duration_s=duration_s, out_dir=tmp_path)
