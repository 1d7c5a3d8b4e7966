"""The cluster runner's parts that need no Ray: options, path map, preflight checks, the install hint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vidsearch.cluster.options import ClusterError, RayOptions
from vidsearch.cluster.pathmap import parse_path_map, to_remote
from vidsearch.cluster.preflight import check_node, sample_paths, vidsearch_version
from vidsearch.cluster.ray_runner import remote_options
from vidsearch.indexer.options import IndexOptions


def test_path_map_matches_whole_components() -> None:
    pm = parse_path_map("/data/=/mnt/nas/data")
    assert pm == ("/data", "/mnt/nas/data")
    assert to_remote("/data/a b/v.mp4", pm) == "/mnt/nas/data/a b/v.mp4"
    assert to_remote("/data", pm) == "/mnt/nas/data"
    assert to_remote("/database/v.mp4", pm) == "/database/v.mp4"
    assert to_remote("/data/v.mp4", None) == "/data/v.mp4"


@pytest.mark.parametrize("bad", ["/data", "data=/mnt", "/data=", "=/mnt", "/a=b"])
def test_path_map_errors_say_the_form(bad: str) -> None:
    with pytest.raises(ClusterError, match="LOCAL=REMOTE"):
        parse_path_map(bad)


def test_ray_options_validate() -> None:
    with pytest.raises(ClusterError, match="--decode-workers"):
        RayOptions(decode_workers=0)
    with pytest.raises(ClusterError, match="--gpus-per-encoder"):
        RayOptions(gpus_per_encoder=-0.5)
    assert RayOptions(gpus_per_encoder=0.25).gpus_per_encoder == 0.25


def test_remote_options_map_model_files(tmp_path: Path) -> None:
    ckpt = tmp_path / "w.pth"
    ckpt.write_bytes(b"x")
    opts = remote_options(
        IndexOptions(model=str(ckpt), model_config=str(tmp_path / "c.json")), (str(tmp_path), "/mnt/w")
    )
    assert opts.model == "/mnt/w/w.pth" and opts.model_config == "/mnt/w/c.json"
    assert remote_options(IndexOptions(model="viclip-b16"), (str(tmp_path), "/mnt/w")).model == "viclip-b16"


def test_sample_paths_spread_and_bounded() -> None:
    paths = [f"/v/{i:03d}.mp4" for i in range(100)]
    got = sample_paths(paths, 8)
    assert len(got) == 8 and got[0] == paths[0] and got == sorted(set(got))
    assert sample_paths(paths[:3], 8) == paths[:3] and sample_paths(paths, 0) == []


def test_check_node_reports_unreadable_paths_and_model_key(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from vidsearch.models import model_key

    good = tmp_path / "a.mp4"
    good.write_bytes(b"\0" * 10)
    rep = check_node([str(good), str(tmp_path / "missing.mp4"), str(tmp_path)], str(tiny_checkpoint), None, None)
    assert rep["unreadable"] == [str(tmp_path / "missing.mp4"), str(tmp_path)]
    assert rep["key"] == model_key(str(tiny_checkpoint)) and rep["version"] == vidsearch_version()
    bad = check_node([], str(tmp_path / "nope.pth"), None, None)
    assert bad["key"] is None and bad["key_error"]


@pytest.mark.parametrize("native", [True, False])
def test_check_node_asks_its_own_cpu_for_bf16(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    """CPU encoders at bf16: each node says whether its CPU has native bf16 (the driver's may differ)."""
    import vidsearch.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    rep = check_node([], str(tiny_checkpoint), None, None, "bf16")
    assert (rep["key"] is not None) == native
    assert native or "no native bf16" in rep["key_error"]
    assert check_node([], str(tiny_checkpoint), None, None, "fp32")["key"] is not None


def test_encode_target_resolves_the_precision_for_the_encoders_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto is fp32 on CPU encoders and bf16/fp16 on GPU ones (asked of a GPU), as a local run there."""
    import vidsearch.cluster.ray_runner as rr
    from vidsearch.errors import ModelError

    cpu = RayOptions(gpus_per_encoder=0)
    assert rr.encode_target(IndexOptions(precision="auto"), cpu) == (0, "fp32")
    assert rr.encode_target(IndexOptions(precision="int8"), cpu) == (0, "int8")
    assert rr.encode_target(IndexOptions(precision="bf16"), cpu) == (0, "bf16")  # each node checks its CPU
    with pytest.raises(ModelError, match="fp16 needs a GPU"):
        rr.encode_target(IndexOptions(precision="fp16"), cpu)
    gpu = RayOptions(gpus_per_encoder=0.5)
    for has_bf16, want in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(rr, "gpu_has_bf16", lambda gpus, has=has_bf16: gpus == 0.5 and has)
        assert rr.encode_target(IndexOptions(precision="auto"), gpu) == (0.5, want)
    assert rr.encode_target(IndexOptions(precision="fp32"), gpu) == (0.5, "fp32")
    with pytest.raises(ModelError, match="int8 is the CPU path"):
        rr.encode_target(IndexOptions(precision="int8"), gpu)


NO_RAY = """
import sys
sys.modules["ray"] = None  # as if Ray were not installed
from vidsearch.cli.main import main
sys.argv = ["vidsearch", "index", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("where", ["auto", "bare-last", "bare-first"])
def test_without_ray_the_flag_says_how_to_install(tmp_path: Path, where: str) -> None:
    (tmp_path / "videos").mkdir()
    args = {
        "auto": [str(tmp_path / "videos"), "--ray", "auto", "--library", str(tmp_path / "lib")],
        # a bare --ray means auto, wherever it stands: the folder after it is not its address
        "bare-last": [str(tmp_path / "videos"), "--library", str(tmp_path / "lib"), "--ray"],
        "bare-first": ["--ray", str(tmp_path / "videos"), "--library", str(tmp_path / "lib")],
    }[where]
    proc = subprocess.run([sys.executable, "-c", NO_RAY, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'vidsearch[ray]'" in lines[0] and "Traceback" not in proc.stderr


def test_bare_ray_flag_takes_only_addresses_as_its_value() -> None:
    from vidsearch.cli.main import bare_ray_flag

    assert bare_ray_flag(["index", "d", "--ray"]) == ["index", "d", "--ray=auto"]
    assert bare_ray_flag(["index", "--ray", "d"]) == ["index", "--ray=auto", "d"]
    assert bare_ray_flag(["index", "--ray", "--decode-workers", "2", "d"])[1] == "--ray=auto"
    for address in ("auto", "local", "10.0.0.5:6379", "head.example.org:6379", "ray://head:10001"):
        assert bare_ray_flag(["index", "d", "--ray", address]) == ["index", "d", "--ray", address]
    assert bare_ray_flag(["index", "--", "--ray"]) == ["index", "--", "--ray"]  # after --: a file name


def test_ingest_without_shards_names_the_folder(tmp_path: Path) -> None:
    from vidsearch.cluster.staging import ingest, shard_name
    from vidsearch.store.library import Library

    with Library.open(tmp_path / "lib", create=True) as lib, pytest.raises(ClusterError, match="no shard-"):
        ingest(lib, tmp_path)
    # Shard names depend on the content only, not on the order a retry sees the videos in.
    metas = [("/v/a.mp4", 10, 1), ("/v/b.mp4", 20, 2)]
    assert shard_name("k", metas) == shard_name("k", metas[::-1]) != shard_name("k2", metas)
    assert shard_name("k", metas) != shard_name("k", [("/v/a.mp4", 10, 3), metas[1]])
