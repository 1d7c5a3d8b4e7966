"""Reading checkpoint files: training checkpoints, the weights-only loader with stand-ins, legacy format, headers."""

from __future__ import annotations

import copy
import os
import struct
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import TINY_CONFIG
from safetensors.torch import save_file

from vidsearch.errors import CheckpointError
from vidsearch.models.checkpoint_io import read_shapes, read_state_dict
from vidsearch.models.unpickle import RefusedGlobal, load_weights_only, pickle_globals, to_plain
from vidsearch.models.viclip import ViCLIP, ViCLIPConfig
from vidsearch.models.weights import load_viclip_checkpoint, resolve_config


def tiny_model(seed: int = 0) -> ViCLIP:
    torch.manual_seed(seed)
    return ViCLIP(ViCLIPConfig(**TINY_CONFIG)).eval()


def same_weights(a: ViCLIP, b: ViCLIP) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def training_checkpoint(model: ViCLIP, tmp_path: Path, legacy: bool = False, **extra: object) -> Path:
    """InternVideo's training layout: model + optimizer/scheduler/scaler state + a config object
    of a class (``utils.easydict.EasyDict``) that no longer exists when the file is loaded."""
    pkg = tmp_path / "trainingcode"
    (pkg / "utils").mkdir(parents=True)
    (pkg / "utils" / "__init__.py").write_text("")
    (pkg / "utils" / "easydict.py").write_text(
        textwrap.dedent("""
        class EasyDict(dict):
            def __init__(self, d=None, **kwargs):
                for k, v in dict(d or {}, **kwargs).items():
                    setattr(self, k, v)
            def __setattr__(self, name, value):
                if isinstance(value, (list, tuple)):
                    value = type(value)(EasyDict(x) if isinstance(x, dict) else x for x in value)
                elif isinstance(value, dict) and not isinstance(value, EasyDict):
                    value = EasyDict(value)
                super().__setattr__(name, value)
                super().__setitem__(name, value)
    """)
    )
    sys.path.insert(0, str(pkg))
    try:
        from utils.easydict import EasyDict  # type: ignore[import-not-found]

        config = EasyDict(
            {
                "model": {"vision_encoder": {"name": "vit_l14", "d_model": 1024}, "temp": 0.01},
                "optimizer": {"opt": "adamW", "lr": 4e-4},
                "inputs": [{"res": 224}],
            }
        )
        work, c = copy.deepcopy(model), model.config  # real optimizer state, for another copy of the weights
        opt = torch.optim.AdamW(work.parameters(), lr=1e-3)
        work.encode_video(torch.randn(1, c.num_frames, 3, c.input_resolution, c.input_resolution)).sum().backward()
        opt.step()
        obj = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": {"last_epoch": 3},
            "scaler": {"scale": 65536.0},
            "config": config,
            "epoch": 3,
            "global_step": 1234,
            **extra,
        }
        path = tmp_path / ("legacy-train.pth" if legacy else "ViCLIP-L_InternVid-FLT-10M.pth")
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    finally:
        sys.path.remove(str(pkg))
        for name in [m for m in sys.modules if m == "utils" or m.startswith("utils.")]:
            del sys.modules[name]
    return path


@pytest.mark.parametrize("legacy", [False, True])
def test_training_checkpoint_with_a_foreign_config_loads(tmp_path: Path, legacy: bool) -> None:
    src = tiny_model()
    path = training_checkpoint(src, tmp_path, legacy=legacy)
    sd = read_state_dict(path)
    assert set(sd) == set(src.state_dict())  # the "model" entry; optimizer state left behind
    assert same_weights(load_viclip_checkpoint(tiny_model(seed=1), path), src)
    assert "utils" not in sys.modules  # nothing was imported to read the config


def test_foreign_config_becomes_plain_dicts(tmp_path: Path) -> None:
    path = training_checkpoint(tiny_model(), tmp_path)
    assert "utils.easydict.EasyDict" in pickle_globals(path)
    config = to_plain(load_weights_only(path, mmap=True))["config"]
    assert type(config) is dict and type(config["model"]["vision_encoder"]) is dict
    assert config["model"]["vision_encoder"] == {"name": "vit_l14", "d_model": 1024}
    assert type(config["inputs"][0]) is dict and config["optimizer"]["lr"] == 4e-4


class _RunsCode:
    def __init__(self, call: object, arg: str) -> None:
        self.call, self.arg = call, arg

    def __reduce__(self) -> tuple:
        return (self.call, (self.arg,))


@pytest.mark.parametrize("where", ["top", "config"])
@pytest.mark.parametrize("call", ["system", "eval"])
def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path: Path, where: str, call: str) -> None:
    marker = tmp_path / "ran"
    payload = (
        _RunsCode(os.system, f"touch {marker}")
        if call == "system"
        else _RunsCode(eval, f"open({str(marker)!r}, 'w').close()")
    )
    sd = tiny_model().state_dict()
    obj = {"model": sd, "x": payload} if where == "top" else {"model": sd, "config": {"a": [1, payload]}}
    path = tmp_path / "evil.pth"
    torch.save(obj, path)
    with pytest.raises(
        CheckpointError,
        match=r"refusing to load checkpoint .*evil\.pth: the pickle calls .*"
        + ("system" if call == "system" else "eval"),
    ) as err:
        read_state_dict(path)
    assert "\n" not in str(err.value) and "VIDSEARCH_TRUST_CHECKPOINT" in str(err.value)
    assert not marker.exists()


def test_zip_files_are_memory_mapped_and_legacy_files_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tiny_model()
    torch.save({"model": src.state_dict()}, tmp_path / "zip.pth")
    torch.save({"model": src.state_dict()}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    calls: list[bool] = []
    real = torch.load

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(bool(kwargs.get("mmap")))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    assert read_state_dict(tmp_path / "zip.pth").keys() == src.state_dict().keys()
    assert calls == [True]  # mapped: entries that are dropped are never read
    calls.clear()
    legacy = read_state_dict(tmp_path / "legacy.pth", mmap=True)
    assert calls == [True, False]  # mmap refused for the legacy format, then a plain read
    assert all(torch.equal(legacy[k], v) for k, v in src.state_dict().items())
    assert read_shapes(tmp_path / "legacy.pth")["vision_encoder.proj"] == (64, 32)


def test_safetensors_shapes_come_from_the_header_only(tmp_path: Path) -> None:
    with torch.device("meta"):
        shapes = ViCLIP(ViCLIPConfig.preset("viclip-b16")).state_dict()
    # Real tensors only where shapes decide the preset; the data is then cut off the file.
    keep = (
        "vision_encoder.conv1.weight",
        "vision_encoder.positional_embedding",
        "vision_encoder.temporal_positional_embedding",
        "vision_encoder.proj",
        "text_encoder.text_projection",
        "text_encoder.positional_embedding",
        "text_encoder.token_embedding.weight",
    )
    sd = {k: torch.zeros(v.shape) if k in keep or v.ndim < 2 else torch.zeros(1) for k, v in shapes.items()}
    path = tmp_path / "model.safetensors"
    save_file(sd, str(path))
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    with open(path, "r+b") as fh:
        fh.truncate(8 + n + 16)  # header intact, weights gone: a full read would fail
    got = read_shapes(path)
    assert got["text_encoder.token_embedding.weight"] == (49408, 512) and len(got) == len(sd)
    cfg, cfg_path = resolve_config(path)
    assert cfg == ViCLIPConfig.preset("viclip-b16") and cfg_path is None
    with pytest.raises(CheckpointError, match="model.safetensors"):
        read_state_dict(path)  # the truncated file is still refused where the weights are needed


def test_bad_safetensors_header_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(CheckpointError, match="junk.safetensors.*does not fit the file") as err:
        read_shapes(path)
    assert "\n" not in str(err.value)


def test_terminal_colour_codes_are_stripped_from_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"x")

    def coloured(*_: object, **__: object) -> None:
        raise RuntimeError(
            "\x1b[1m\x1b[31mWeights only load failed\x1b[0m. Re-running may help.\n\x1b[1mdetails\x1b[0m"
        )

    monkeypatch.setattr(torch, "load", coloured)
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    msg = str(err.value)
    assert "Weights only load failed. Re-running may help." in msg
    assert "\x1b" not in msg and "\n" not in msg and "details" not in msg


def test_trusted_full_unpickling_still_maps_missing_config_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    src = tiny_model()
    path = training_checkpoint(src, tmp_path)
    monkeypatch.setenv("VIDSEARCH_TRUST_CHECKPOINT", "1")
    with caplog.at_level("WARNING"):
        sd = read_state_dict(path)  # no "No module named 'utils'"
    assert all(torch.equal(sd[k], v) for k, v in src.state_dict().items())
    assert any("full unpickling" in r.getMessage() for r in caplog.records)


def _with_pickle(tmp_path: Path, data: bytes) -> Path:
    """A zip-format ``torch.save`` file whose object pickle is ``data``."""
    import zipfile

    src = tmp_path / "src.pth"
    torch.save({}, src)
    path = tmp_path / "crafted.pth"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            zout.writestr(item, data if item.filename.endswith("/data.pkl") else zin.read(item))
    return path


def test_a_pickle_cannot_rewrite_the_allowed_functions(tmp_path: Path) -> None:
    import pickle

    from torch import _utils

    before = _utils._rebuild_tensor_v2.__defaults__
    # GLOBAL torch._utils._rebuild_tensor_v2; BUILD (None, {"__defaults__": None}): setattr on the function.
    data = (
        pickle.PROTO
        + b"\x02"
        + pickle.GLOBAL
        + b"torch._utils\n_rebuild_tensor_v2\n"
        + pickle.NONE
        + pickle.EMPTY_DICT
        + pickle.BINUNICODE
        + struct.pack("<I", 12)
        + b"__defaults__"
        + pickle.NONE
        + pickle.SETITEM
        + pickle.TUPLE2
        + pickle.BUILD
        + pickle.STOP
    )
    with pytest.raises(pickle.UnpicklingError, match="Can only build"):
        load_weights_only(_with_pickle(tmp_path, data), mmap=False)
    assert _utils._rebuild_tensor_v2.__defaults__ == before


def test_calling_a_foreign_class_is_refused(tmp_path: Path) -> None:
    import pickle

    # GLOBAL evil.Thing; REDUCE ("x",): a call of a name that only has a stand-in.
    data = (
        pickle.PROTO
        + b"\x02"
        + pickle.GLOBAL
        + b"evil\nThing\n"
        + pickle.BINUNICODE
        + struct.pack("<I", 1)
        + b"x"
        + pickle.TUPLE1
        + pickle.REDUCE
        + pickle.STOP
    )
    with pytest.raises(RefusedGlobal, match="the pickle calls evil.Thing"):
        load_weights_only(_with_pickle(tmp_path, data), mmap=False)
