"""Resource faults on real components.

- A flaky object store: the whole chain index → extract (Ray) → filter → pack → report on the
  moto server, once straight and once through a `FaultProxy` that answers every 7th request
  503 SlowDown, resets every 11th connection, answers every 13th 500 and a run of 4 requests
  503: the same shards, index and metrics, and the extract summary counts the retries.
- A full output disk: `space extract` writing to a small tmpfs (in a private mount namespace)
  stops with one line naming the file and the space it needs, committed units intact; after
  the tmpfs grows the same command resumes, ending with the records of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import extract as extract_cmd
from pipelines import filter as filter_cmd
from pipelines import index as index_cmd
from pipelines import pack as pack_cmd
from pipelines import report as report_cmd
from pipelines.extract import RayConfig, run_extract
from pipelines.units import COMMITS, UNITS, plan_units
from space_data import storage
from space_data.datasets import write_manifest
from space_data.extract import ExtractConfig
from space_data.testing.fault_proxy import FaultProxy
from tests.pipelines.test_object_storage import _params, local_corpus, run  # noqa: F401

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.realdata]

ROOT = Path(__file__).resolve().parents[2]
SPACE = Path(sys.executable).with_name("space")


def sick_store(n: int) -> str | None:
    """The faulty run's plan: request n → fault."""
    if 30 <= n < 34:
        return "slowdown"
    if n % 7 == 0:
        return "slowdown"
    if n % 11 == 0:
        return "reset"
    if n % 13 == 0:
        return "error500"
    return None


@pytest.fixture(scope="module")
def proxy(s3_server):
    """A FaultProxy before the session's moto server, its variables set in this process
    before Ray starts (Ray's workers inherit them); no faults until a test sets `plan`."""
    import s3fs

    proxy = FaultProxy(s3_server.endpoint)
    env = proxy.env(s3_server.env)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    s3fs.S3FileSystem.clear_instance_cache()
    yield proxy
    proxy.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def ray_address(proxy):
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _chain(corpus: str, data: str, params: Path) -> str:
    """index → extract → filter → pack → report into `data`; the extract summary line."""
    manifest, features = f"{data}/manifest.parquet", f"{data}/features"
    keep, shards = f"{data}/keep.parquet", f"{data}/shards"
    run(index_cmd, "--corpus", f"voxceleb2={corpus}", "--out", manifest, "--params", params)
    out = run(extract_cmd, "--manifest", manifest, "--out", features, "--params", params)
    run(filter_cmd, "--manifest", manifest, "--clips", f"{features}/clips.parquet",
        "--out", keep, "--params", params)  # fmt: skip
    run(pack_cmd, "--keep", keep, "--features", features, "--out", shards, "--params", params)
    run(report_cmd, "--manifest", manifest, "--keep", keep, "--features", features,
        "--shards", shards, "--out", f"{data}/reports", "--params", params)  # fmt: skip
    return next(line for line in out.splitlines() if line.startswith("extract: ran"))


def test_chain_through_a_flaky_object_store_ends_as_a_clean_run(
    proxy,
    s3_bucket,
    ray_address,
    local_corpus,  # noqa: F811 — the fixture imported above
    tmp_path,
):
    os.chdir(tmp_path)  # nothing may land in a local folder named "s3:"
    corpus = f"{s3_bucket}/corpus/voxceleb2"
    for path in storage.walk(str(local_corpus)):
        storage.write_bytes(storage.join(corpus, storage.relpath(path, str(local_corpus))),
                            Path(path).read_bytes())  # fmt: skip
    params = _params(tmp_path)
    clean = _chain(corpus, f"{s3_bucket}/clean", params)
    assert not proxy.injected and "; 0 storage retries;" in clean

    requests = proxy.requests
    proxy.plan = lambda n: sick_store(n - requests)
    sick = _chain(corpus, f"{s3_bucket}/sick", params)
    proxy.plan = lambda n: None
    injected = sum(proxy.injected.values())
    assert (
        proxy.injected["slowdown"] >= 4 and proxy.injected["reset"] and proxy.injected["error500"]
    )
    retried = int(re.search(r"; (\d+) storage retries;", sick).group(1))
    print(f"faults injected {dict(proxy.injected)}; {sick}")  # shown with pytest -s
    # the extract stage's share of the faults was retried; aiohttp resends a request on a
    # reset keep-alive connection once by itself (uncounted), so fewer retries than faults
    assert 0 < retried < injected, (sick, proxy.injected)

    names = storage.listdir(f"{s3_bucket}/clean/shards")
    assert "index.json" in names and len(names) > 1
    assert storage.listdir(f"{s3_bucket}/sick/shards") == names
    for name in names:
        assert storage.read_bytes(f"{s3_bucket}/sick/shards/{name}") == storage.read_bytes(
            f"{s3_bucket}/clean/shards/{name}"
        ), name
    metrics = [json.loads(storage.read_bytes(f"{s3_bucket}/{run}/reports/metrics.json"))
               for run in ("clean", "sick")]  # fmt: skip
    # the same data; only the extract run's fault counts differ
    assert metrics[0]["extract"]["storage_retries"] == 0
    assert metrics[1]["extract"]["storage_retries"] == retried
    assert {k: v for k, v in metrics[0].items() if k != "extract"} == {
        k: v for k, v in metrics[1].items() if k != "extract"
    }
    clips = [storage.read_bytes(f"{s3_bucket}/{run}/features/clips.parquet")
             for run in ("clean", "sick")]  # fmt: skip
    assert clips[0] == clips[1]
    assert not (tmp_path / "s3:").exists()


# --- a full disk -------------------------------------------------------------------------------

CONFIG = ExtractConfig(crop_size=256)
RAY = RayConfig(clips_per_unit=1, num_workers=1)
FULL_DISK = r"""
set -u
mount -t tmpfs -o size="$SIZE" tmpfs "$OUT" || exit 97
"$SPACE" extract --manifest "$MANIFEST" --out "$OUT" --params "$PARAMS" 2> "$LOGS/first.log"
echo $? > "$LOGS/first.rc"
cp -a "$OUT/." "$LOGS/after-failure/"
mount -o remount,size=256m "$OUT"
"$SPACE" extract --manifest "$MANIFEST" --out "$OUT" --params "$PARAMS" 2> "$LOGS/second.log"
echo $? > "$LOGS/second.rc"
cp -a "$OUT/." "$LOGS/final/"
"""


def _pages(folder: Path) -> int:
    """Bytes the files below `folder` take on a tmpfs (whole 4 KiB pages)."""
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file())


def _files(folder: Path, pattern: str) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.glob(pattern)}


def test_a_full_disk_stops_with_one_line_and_the_rerun_resumes(short_clips, ray_address, tmp_path):
    clips = short_clips[:3]
    reference = tmp_path / "reference"
    run_extract(clips, reference, CONFIG, RAY, progress=False)
    manifest = tmp_path / "manifest.parquet"
    write_manifest(clips, str(manifest))
    params = tmp_path / "params.yaml"
    params.write_text("extract:\n  crop_size: 256\nray:\n  clips_per_unit: 1\n  num_workers: 1\n")
    logs, out = tmp_path / "logs", tmp_path / "out"
    for folder in (out, logs / "after-failure", logs / "final"):
        folder.mkdir(parents=True)
    # room for about half the features: the first unit commits, a later one finds no space
    size = _pages(reference) // 2 // 4096 * 4096
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a private Ray inside
    env.update(SIZE=str(size), OUT=str(out), SPACE=str(SPACE), MANIFEST=str(manifest),
               PARAMS=str(params), LOGS=str(logs), PYTHONPATH=str(ROOT))  # fmt: skip
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is absent: no private mount namespace for a tmpfs")
    done = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "sh", "-c",
                           FULL_DISK], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    if done.returncode == 97 or not (logs / "first.rc").is_file():
        pytest.skip(f"no tmpfs in a private mount namespace here: {done.stderr.strip()[-300:]}")

    first = (logs / "first.log").read_text()
    assert (logs / "first.rc").read_text().strip() == "2", first
    assert "Traceback" not in first
    [line] = [x for x in first.splitlines() if x.startswith("Error:")]
    assert "no space left writing " + str(out) in line and "it needs" in line, line
    print(line)  # shown with pytest -s
    after = logs / "after-failure"
    committed = _files(after, f"{COMMITS}/*.json")
    n_units = len(plan_units(clips, RAY.clips_per_unit))
    assert 1 <= len(committed) < n_units, "the disk must fill mid-run"
    assert not (after / "clips.parquet").exists()
    assert not list(after.rglob("*.tmp*"))  # no partial file left behind

    second = (logs / "second.log").read_text()
    assert (logs / "second.rc").read_text().strip() == "0", second
    assert f"skipped {len(committed)}" in second
    final = logs / "final"
    assert {k: v for k, v in _files(final, f"{COMMITS}/*.json").items() if k in committed} == (
        committed
    )  # committed units stay as they were
    assert _files(final, f"{UNITS}/*/*.npz") == _files(reference, f"{UNITS}/*/*.npz")
    assert _files(final, "clips.parquet") == _files(reference, "clips.parquet")
