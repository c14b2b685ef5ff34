"""The filesystem layer on local disk and on a real S3 server (moto): paths keep their form,
writes are whole, listings are one request per page, access errors are one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from space_data import storage

ROOT = Path(__file__).resolve().parents[2]
SPACE = Path(sys.executable).with_name("space")


@pytest.fixture(params=["local", "s3"])
def base(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "base")
    return request.getfixturevalue("s3_bucket") + "/base"


def test_paths_keep_their_form():
    assert storage.join("s3://b/x/", "units", "u1") == "s3://b/x/units/u1"
    assert storage.join("data/f", "units") == os.path.join("data/f", "units")
    assert storage.parent("s3://b/x/y.json") == "s3://b/x" and storage.name("s3://b/x/y/") == "y"


def test_whole_writes_listing_and_removal(base):
    storage.write_bytes(storage.join(base, "a", "x.bin"), b"123")
    storage.write_text(storage.join(base, "a", "y.txt"), "hi")
    with storage.writing(storage.join(base, "b.bin")) as tmp:
        Path(tmp).write_bytes(b"whole")
    with pytest.raises(RuntimeError), storage.writing(storage.join(base, "c.bin")) as tmp:
        Path(tmp).write_bytes(b"partial")
        raise RuntimeError("writer failed")
    assert storage.listdir(base) == ["a", "b.bin"]  # nothing of the failed write, no temporaries
    assert storage.listdir(storage.join(base, "a")) == ["x.bin", "y.txt"]
    assert storage.listdir(storage.join(base, "absent")) == []
    assert storage.read_bytes(storage.join(base, "b.bin")) == b"whole"
    assert storage.isfile(storage.join(base, "a", "x.bin")) and storage.isdir(
        storage.join(base, "a")
    )
    assert not storage.exists(storage.join(base, "nope"))
    frame = pd.DataFrame({"clip_id": ["a", "b"], "keep": [True, False]})
    storage.write_parquet(frame, storage.join(base, "t.parquet"))
    assert storage.read_parquet(storage.join(base, "t.parquet")).equals(frame)
    storage.remove([storage.join(base, "a", "x.bin"), storage.join(base, "a", "gone")])
    assert storage.listdir(storage.join(base, "a")) == ["y.txt"]
    storage.remove_tree(storage.join(base, "a"))
    assert "a" not in storage.listdir(base)


@pytest.mark.slow
def test_a_listing_is_one_request_per_page(s3_server, s3_bucket):
    folder = f"{s3_bucket}/many"
    import s3fs

    s3fs.S3FileSystem().pipe({f"{folder.removeprefix('s3://')}/{i:05d}": b"" for i in range(1001)})
    mark = len(s3_server.lines())
    assert len(storage.listdir(folder)) == 1001
    bucket = "/" + s3_bucket.removeprefix("s3://")
    assert len(s3_server.requests("GET", bucket, since=mark)) == 2  # 1000 + 1 names


def test_pinned_file_is_downloaded_once(s3_server, s3_bucket, tmp_path):
    url = f"{s3_bucket}/corpus/clip.mp4"
    storage.write_bytes(url, b"x" * 1000)
    mark = len(s3_server.lines())
    with storage.pinned(url, None, f"{s3_bucket}/corpus/missing.m4a"):
        for _ in range(3):
            assert storage.isfile(url) and storage.size(url) == 1000
            with storage.local_path(url) as local:
                assert Path(local).read_bytes() == b"x" * 1000
        copy = local
    assert not Path(copy).exists()  # temporary copy cleaned
    key = "/" + url.removeprefix("s3://")
    assert s3_server.requests("GET", key, since=mark) == [key]


@pytest.mark.slow
def test_missing_credentials_and_unreachable_endpoint_are_one_line(tmp_path):
    """The CLI names what is missing (exit 2), no traceback."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    base.update(PYTHONPATH=str(ROOT), AWS_EC2_METADATA_DISABLED="true")
    args = [SPACE, "filter", "--manifest", "s3://b/m.parquet", "--clips", "s3://b/c.parquet",
            "--out", "s3://b/k.parquet", "--params", str(ROOT / "params.yaml")]  # fmt: skip
    result = subprocess.run(args, env=base, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "AWS_ACCESS_KEY_ID" in result.stderr
    unreachable = dict(base, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y",
                       AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1")  # fmt: skip
    result = subprocess.run(args, env=unreachable, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "http://127.0.0.1:9" in result.stderr
    assert not (tmp_path / "s3:").exists()


def test_access_problems_are_found_through_wrappers_and_causes():
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    class RayTaskErrorLike(NoCredentialsError):  # Ray re-raises a task's error as a subclass
        pass

    try:
        raise RuntimeError("while committing a unit") from RayTaskErrorLike()
    except RuntimeError as e:
        assert "AWS_ACCESS_KEY_ID" in storage.access_problem(e)
    unreachable = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    assert "unreachable" in storage.access_problem(unreachable)
    assert storage.access_problem(ValueError("a bad clip")) is None


# --- faults: a flaky object store (moto behind a fault-injecting proxy), a full disk -----------


@pytest.fixture()
def flaky(s3_server, s3_bucket, monkeypatch):
    """(bucket, proxy): the session's moto server reached through a `FaultProxy` (no faults
    until the test sets `proxy.plan`); s3fs instances made before are dropped."""
    import s3fs

    from space_data.testing.fault_proxy import FaultProxy

    proxy = FaultProxy(s3_server.endpoint, stall_s=3.0)
    for key, value in proxy.env(s3_server.env).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SPACE_STORAGE_READ_TIMEOUT_S", "1")
    s3fs.S3FileSystem.clear_instance_cache()
    yield s3_bucket, proxy
    proxy.stop()
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.parametrize(
    ("fault", "length"), [("slowdown", 3), ("error500", 2), ("reset", 3), ("stall", 1)]
)
def test_transient_errors_are_retried_counted_and_logged(flaky, fault, length, caplog):
    from space_data.testing.fault_proxy import burst

    bucket, proxy = flaky
    data = {f"{bucket}/f/{i}.bin": os.urandom(2000 + i) for i in range(3)}
    before = storage.retries()
    proxy.plan = burst(2, length, fault)  # the 2nd request and the next ones fail
    for path, payload in data.items():
        storage.write_bytes(path, payload)
    assert storage.read_many(list(data)) == data
    assert storage.listdir(f"{bucket}/f") == ["0.bin", "1.bin", "2.bin"]
    assert proxy.injected[fault] == length
    retried = storage.retries() - before
    # aiohttp resends a request on a reused connection once by itself (uncounted)
    assert 1 <= retried <= length
    lines = [r.getMessage() for r in caplog.records if r.name == "space_data.storage"]
    assert len(lines) == retried and "retry 1 of 9" in lines[0], lines


@pytest.mark.slow
def test_retries_are_bounded_then_one_line(flaky, monkeypatch):
    from space_data.testing.fault_proxy import always

    bucket, proxy = flaky
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    proxy.plan = always("slowdown")
    with pytest.raises(OSError) as failure:
        storage.write_bytes(f"{bucket}/x.bin", b"never")
    assert 2 <= proxy.requests <= 2 * 5  # botocore's attempts, times s3fs's 5 calls at most
    problem = storage.access_problem(failure.value)
    assert problem.startswith("object storage kept failing") and "2 attempts" in problem


@pytest.mark.slow
def test_permanent_errors_are_one_line_and_not_retried(flaky, tmp_path):
    """403 AccessDenied and a missing bucket: exit 2, one line, no retry."""
    from space_data.testing.fault_proxy import always

    bucket, proxy = flaky
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = [SPACE, "filter", "--manifest", f"{bucket}/m.parquet", "--clips",
            f"{bucket}/c.parquet", "--out", f"{bucket}/k.parquet",
            "--params", str(ROOT / "params.yaml")]  # fmt: skip
    proxy.plan = always("denied")
    result = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "denied access (403" in result.stderr
    assert proxy.requests == proxy.injected["denied"] <= 2, proxy.requests  # nothing retried
    proxy.plan = lambda n: None
    missing = [str(a).replace(bucket, "s3://no-such-bucket-here") for a in args]
    result = subprocess.run(missing, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "bucket" in result.stderr, result.stderr


@pytest.fixture()
def file_size_limit():
    """Set this process's file-size limit (bytes; Python ignores SIGXFSZ, so a write past it
    fails with EFBIG), restored after the test."""
    import resource

    saved = resource.getrlimit(resource.RLIMIT_FSIZE)
    yield lambda size: resource.setrlimit(resource.RLIMIT_FSIZE, (size, saved[1]))
    resource.setrlimit(resource.RLIMIT_FSIZE, saved)


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, file_size_limit):
    target = tmp_path / "out" / "record.npz"
    file_size_limit(4096)
    with pytest.raises(storage.DiskFull) as whole:
        storage.write_bytes(str(target), b"x" * 10_000)
    with pytest.raises(storage.DiskFull) as streamed, storage.writing(str(target)) as tmp:
        Path(tmp).write_bytes(b"y" * 10_000)  # one streaming writer's output
    file_size_limit(2**40)
    assert storage.disk_full(RuntimeError("not a write")) is None
    for failure, need in ((whole, "needs 10000 bytes"), (streamed, "needs more than 4096 bytes")):
        line = storage.disk_full(failure.value)
        assert str(target) in line and need in line and "\n" not in line, line
    assert os.listdir(tmp_path / "out") == []  # no partial file, no temporary
    storage.write_bytes(str(target), b"x" * 10_000)  # space back: the same write works
    assert target.read_bytes() == b"x" * 10_000
