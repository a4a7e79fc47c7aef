"""Live sources that drop out are reopened with back-off; ones that never return end the run."""

from __future__ import annotations

import logging

import pytest

from edgevision.runtimes import load_runtime
from edgevision.stream import CallbackSink, DropPolicy, EndReason, ReconnectPolicy, StreamConfig, run_stream
from edgevision.errors import ConfigError
from tests.stream.memory_sources import FlakySource
from tests.stream.videos import digit_frame, digit_images

FAST_RETRY = ReconnectPolicy(max_retries=4, initial_delay_s=0.02, max_delay_s=0.1)


@pytest.fixture(scope="module")
def runtime(onnx_bundle):
    with load_runtime(onnx_bundle, threads=1) as engine:
        yield engine


@pytest.fixture(scope="module")
def frames(digits):
    return [digit_frame(d, width=96, height=72) for d in digit_images(digits.val)]


def _config(**kw) -> StreamConfig:
    return StreamConfig(drop_policy=DropPolicy.BLOCK, reconnect=FAST_RETRY, **kw)


@pytest.mark.parametrize("raise_on_failure", [False, True], ids=["read-returns-nothing", "read-raises"])
def test_disconnected_camera_is_reopened_and_the_run_completes(runtime, frames, caplog, raise_on_failure):
    source = FlakySource(frames, fail_after=10, failed_opens=2, raise_on_failure=raise_on_failure)
    indices: list[int] = []
    with caplog.at_level(logging.INFO, logger="edgevision"):
        summary = run_stream(runtime, source, sinks=[CallbackSink(lambda r: indices.append(r.index))],
                             config=_config(max_frames=30))
    assert summary.end_reason is EndReason.MAX_FRAMES and summary.frames == 30
    assert summary.reconnects == 1 and indices == list(range(30))
    assert len(source.open_times) == 4  # first open, two failed reopens, one that worked
    assert "reopening in" in caplog.text and "reopened" in caplog.text
    assert not source.is_open


def test_back_off_grows_and_gives_up_when_the_camera_never_returns(runtime, frames, caplog):
    source = FlakySource(frames, fail_after=5, failed_opens=100)
    with caplog.at_level(logging.WARNING, logger="edgevision"):
        summary = run_stream(runtime, source, config=_config())
    assert summary.end_reason is EndReason.SOURCE_LOST and summary.frames == 5 and summary.reconnects == 0
    attempts = source.open_times[1:]
    assert len(attempts) == FAST_RETRY.max_retries
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps[0] >= 0.04 * 0.9 and gaps[-1] >= 0.1 * 0.9  # 0.02 → 0.04 → 0.08 → capped at 0.1
    assert "Gave up" in caplog.text


def test_reconnect_policy_delays():
    policy = ReconnectPolicy(max_retries=6, initial_delay_s=0.5, max_delay_s=3.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    with pytest.raises(ConfigError):
        ReconnectPolicy(initial_delay_s=5.0, max_delay_s=1.0)
