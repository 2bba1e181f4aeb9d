"""`cpu_path`: run a test once with the compiled CPU kernels and once with ATen ops only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from robolearn.learn.cqn import kernels


@pytest.fixture(params=["kernels", "aten"])
def cpu_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "aten":
        monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    kernels.extension.cache_clear()
    if request.param == "kernels":
        assert kernels.extension() is not None, (
            "the CQN CPU kernels did not build (see the warning above); `make setup` installs "
            "g++ and ninja-build")
    yield request.param
    kernels.extension.cache_clear()  # the next caller sees the environment restored
