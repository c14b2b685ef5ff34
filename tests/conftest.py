"""Shared fixtures. Real media comes from ../shared/realdata (override with SPACE_REALDATA);
tests that need it skip with a reason where it is absent."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

from space_data.testing.faces import realdata_root


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]
) -> Path:
    """A folder that `build(folder)` fills once for the whole run. Alone, a fresh temp folder.
    Under pytest-xdist (`make test`: two worker processes) the folder lies in the run's base temp,
    shared by the workers: the first to ask builds it under a file lock, the others wait for it
    and reuse it (a build that failed half way is started again by the next one to ask)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        path = tmp_path_factory.mktemp(name)
        build(path)
        return path
    root = tmp_path_factory.getbasetemp().parent  # popen-gw0/.. : one per run
    path, done = root / name, root / f"{name}.done"
    with FileLock(root / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
            build(path)
            done.touch()
    return path


@pytest.fixture(scope="session")
def realdata() -> Path:
    path = realdata_root()
    if not path.is_dir():
        pytest.skip(f"real media folder {path} is absent (set SPACE_REALDATA to use another)")
    return path


# The sample corpus shared by every test that needs media with known ground truth: built once
# per run (~20 s on one core; once for both xdist workers) with fewer speakers and 3-s clips;
# every designed clip kind is still there (the hand clip only where the realdata hand photo
# exists).
SAMPLE_TEST_CONFIG = {"speakers_per_corpus": 3, "min_seconds": 3.0, "max_seconds": 3.0}


@pytest.fixture(scope="session")
def sample_config():
    """The SynthConfig the session's sample corpus is built with (realdata photos when present)."""
    from space_data.synth import SynthConfig

    images = realdata_root() / "images"
    hand = images / "hand_on_cheek.jpg"
    return SynthConfig(
        photos_dir=str(images) if images.is_dir() else None,
        hand_photo=str(hand) if hand.is_file() else None,
        **SAMPLE_TEST_CONFIG,
    )


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory: pytest.TempPathFactory, sample_config) -> Path:
    """Path of a freshly built sample corpus (`truth.json`, `truth/`, one tree per corpus)."""
    from space_data.synth import build_sample_corpus

    return built_once(
        tmp_path_factory, "sample", lambda out: build_sample_corpus(out, sample_config)
    )


# --- object storage: moto's standalone S3 server -------------------------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """One moto S3 server for the session (`moto_server` of this venv; one per xdist worker, each
    on a free port), stopped by PID after."""
    from space_data.testing.s3 import S3Server

    try:
        server = S3Server(tmp_path_factory.mktemp("moto") / "requests.log")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    yield server
    server.stop()


@pytest.fixture()
def s3_bucket(s3_server, monkeypatch: pytest.MonkeyPatch) -> str:
    """`s3://<fresh bucket>` on the session's moto server, with the AWS_* variables set for
    this process and the subprocesses it starts."""
    import uuid

    import s3fs

    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()  # an earlier instance may predate the variables
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(bucket)
    return f"s3://{bucket}"
