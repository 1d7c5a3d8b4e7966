"""Where the words come from (vidsearch.speech): subtitle files and streams, audio, recognizers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import speechgen
import videogen

from vidsearch.errors import InputError, WeightsNotFoundError
from vidsearch.speech.audio import SAMPLE_RATE, load_audio
from vidsearch.speech.backends import open_transcriber, prepare_backend
from vidsearch.speech.sources import sidecar_stamp, transcribe_video
from vidsearch.speech.subtitles import decode_text, find_sidecars, read_embedded, read_sidecar, sidecar_language
from vidsearch.speech.transcript import Line, Word, to_srt, to_vtt, words_from_json, words_json

CUES = [(1.0, 2.5, "The bridge is closed"), (3.0, 4.0, "Café crème brûlée")]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "cp1252"])
def test_decode_text_detects_the_encoding(encoding: str) -> None:
    text = "1\r\n00:00:01,000 --> 00:00:02,000\r\nCafé crème brûlée\r\n"
    decoded, found = decode_text(text.encode(encoding))
    assert decoded.lstrip("\ufeff") == text
    assert found.startswith(encoding.split("-")[0]) or found == encoding


def test_sidecars_are_found_beside_the_video_best_first(tmp_path: Path) -> None:
    video = videogen.write_video(tmp_path / "clip.mp4", seconds=1)
    for name in ("clip.fr.srt", "clip.en.forced.srt", "clip.srt", "clip.en.vtt", "clipper.srt", "clip.txt"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in find_sidecars(video)] == ["clip.srt", "clip.en.vtt", "clip.fr.srt", "clip.en.forced.srt"]
    assert sidecar_language(video, tmp_path / "clip.pt_BR.srt") == "pt-BR"
    assert sidecar_language(video, tmp_path / "clip.srt") is None
    assert "clip.srt" in sidecar_stamp(video) and "clipper" not in sidecar_stamp(video)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "cp1252"])
def test_srt_in_any_encoding(tmp_path: Path, encoding: str) -> None:
    video = tmp_path / "clip.mp4"
    got = read_sidecar(video, speechgen.write_srt(tmp_path / "clip.de.srt", CUES, encoding))
    assert [(line.start, line.end, line.text) for line in got.lines] == CUES
    assert got.language == "de" and got.source == "sidecar" and got.backend == "clip.de.srt"
    assert any("cp1252" in n for n in got.notes) == (encoding == "cp1252")


def test_vtt_notes_and_tags_are_not_text(tmp_path: Path) -> None:
    cues = [(0.5, 1.8, "hello <b>there</b>"), (2.0, 3.0, "second line")]
    got = read_sidecar(tmp_path / "clip.mp4", speechgen.write_vtt(tmp_path / "clip.vtt", cues))
    assert [line.text for line in got.lines] == ["hello there", "second line"]
    assert got.lines[0].start == pytest.approx(0.5) and got.lines[0].end == pytest.approx(1.8)


def test_broken_cues_are_skipped_with_a_reason(tmp_path: Path) -> None:
    broken = tmp_path / "clip.srt"
    broken.write_text(
        "1\n00:00:0x,500 --> 00:00:01,800\nunreadable\n\n"
        "2\n00:00:05,000 --> 00:00:03,000\nreversed\n\n"
        "3\n00:00:06,000 --> 00:00:07,000\nkept\n"
    )
    got = read_sidecar(tmp_path / "clip.mp4", broken)
    assert [line.text for line in got.lines] == ["kept"]
    assert any("1 cue(s) with unreadable times" in n for n in got.notes)
    assert any("1 cue(s) ending before they start" in n for n in got.notes)


def test_a_file_that_is_no_subtitle_gives_no_lines_and_says_why(tmp_path: Path) -> None:
    junk = tmp_path / "clip.srt"
    junk.write_bytes(b"\x00\x01\x02 not subtitles at all \xff\xfe")
    got = read_sidecar(tmp_path / "clip.mp4", junk)
    assert got.lines == () and got.notes and "clip.srt" in got.notes[-1]


@pytest.mark.parametrize(
    ("ext", "codec", "named", "language"),
    [
        (".mp4", "mov_text", "mov_text", "eng"),
        (".mkv", "srt", "srt", "deu"),
        (".mkv", "ass", "ssa", None),
        (".mkv", "webvtt", "webvtt", "fra"),
    ],
)
def test_embedded_text_streams(tmp_path: Path, ext: str, codec: str, named: str, language: str | None) -> None:
    src = videogen.write_video(tmp_path / f"src{ext}", seconds=5, fps=5)
    srt = speechgen.write_srt(tmp_path / "subs.srt", CUES)
    video = speechgen.embed_subtitles(src, srt, tmp_path / f"clip{ext}", codec, language)
    got = read_embedded(video)
    assert got is not None and got.source == "embedded" and got.backend == f"stream 1 ({named})"
    assert [line.text for line in got.lines] == [c[2] for c in CUES]
    assert got.lines[0].start == pytest.approx(1.0, abs=0.01) and got.lines[0].end == pytest.approx(2.5, abs=0.01)
    assert got.language == language
    assert read_embedded(src) is None  # no subtitle stream at all


def test_sidecar_wins_and_a_broken_one_falls_through_with_its_note(tmp_path: Path) -> None:
    src = videogen.write_video(tmp_path / "src.mp4", seconds=5, fps=5)
    video = speechgen.embed_subtitles(
        src, speechgen.write_srt(tmp_path / "s.srt", CUES), tmp_path / "v.mp4", "mov_text"
    )
    (tmp_path / "v.srt").write_text("not a subtitle file")
    got = transcribe_video(video, None)
    assert got.source == "embedded" and len(got.lines) == 2
    assert any("v.srt" in n for n in got.notes)
    speechgen.write_srt(tmp_path / "v.srt", [(0.0, 1.0, "from the sidecar")])
    assert transcribe_video(video, None).lines[0].text == "from the sidecar"


def test_export_round_trip_formats() -> None:
    lines = [Line(1.0, 2.5, "first line"), Line(3.0, 4.25, "second, with\na break")]
    srt, vtt = to_srt(lines), to_vtt(lines)
    assert "00:00:01,000 --> 00:00:02,500" in srt and "first line" in srt
    assert vtt.startswith("WEBVTT") and "00:00:03.000 --> 00:00:04.250" in vtt
    words = (Word(1.0, 1.2, "first"), Word(1.3, 2.5, "line"))
    assert words_from_json(words_json(words)) == words and words_json(()) is None


def test_audio_default_track_resampled_and_reasons(tmp_path: Path) -> None:
    with_audio = videogen.write_video(tmp_path / "a.mp4", seconds=2, fps=5, audio=True)
    audio = load_audio(with_audio)
    assert audio.reason is None and audio.samples is not None
    assert audio.samples.dtype == np.float32 and audio.seconds == pytest.approx(2.0, abs=0.1)
    assert load_audio(videogen.write_video(tmp_path / "silent_video.mp4", seconds=1)).reason == "no audio track"
    if speechgen.ESPEAK is None:
        pytest.skip("espeak-ng is not installed (README: set-up, contributors)")
    spoken = speechgen.write_spoken_video(tmp_path / "s44.mp4", [(0.2, "hello")], seconds=2, rate=44100)
    odd = load_audio(tmp_path / "s44.mp4")
    assert odd.samples is not None and odd.seconds == pytest.approx(2.0, abs=0.1)
    # the speech is where it was placed, after resampling 44.1 kHz -> 16 kHz
    loud = np.flatnonzero(np.abs(odd.samples) > 0.02)
    assert loud[0] / SAMPLE_RATE == pytest.approx(spoken[0][0], abs=0.1)


def test_silent_and_corrupt_audio_are_reasons(tmp_path: Path) -> None:
    silent = speechgen.write_spoken_video(tmp_path / "silent.mp4", [], seconds=2)
    assert silent == [] and load_audio(tmp_path / "silent.mp4").reason == "the audio is silent"
    src = videogen.write_video(tmp_path / "a.mp4", seconds=2, fps=5, audio=True)
    corrupt = tmp_path / "corrupt.mkv"
    import subprocess

    subprocess.run(
        [speechgen.ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(src), "-c", "copy"]
        + ["-bsf:a", "noise=amount=-1", str(corrupt)],
        check=True,
    )
    got = load_audio(corrupt)
    assert got.samples is None and "cannot be decoded" in (got.reason or "")


def test_unknown_backend_names_the_valid_ones() -> None:
    with pytest.raises(InputError, match="whisper, whisper:SIZE.*pocketsphinx"):
        open_transcriber("kaldi")
    with pytest.raises(InputError):
        prepare_backend("pocketsphinx:large")


def test_whisper_offline_is_one_line_naming_the_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("faster_whisper", reason="the speech extra is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(WeightsNotFoundError) as err:
        open_transcriber("whisper:tiny")  # the real loading path: cache lookup, then the hub
    message = str(err.value)
    assert "\n" not in message and "hf download Systran/faster-whisper-tiny" in message
    assert "HF_HUB_OFFLINE" in message


@pytest.mark.slow
def test_pocketsphinx_times_words_within_a_second(tmp_path: Path) -> None:
    pytest.importorskip("pocketsphinx", reason="the speech extra is not installed")
    if speechgen.ESPEAK is None:
        pytest.skip("espeak-ng is not installed (README: set-up, contributors)")
    said = [(0.5, "the river flows north"), (4.0, "open the window please"), (8.0, "good morning everyone")]
    truth = speechgen.write_spoken_video(tmp_path / "s.mp4", said, seconds=11)
    got = transcribe_video(tmp_path / "s.mp4", open_transcriber("pocketsphinx"))
    assert got.source == "speech" and got.backend == "pocketsphinx" and got.lines
    words = [w for line in got.lines for w in line.words]
    assert words and all(w.start <= w.end for w in words)
    for start, end, _ in truth:  # each sentence is heard: words begin within 1 s of when it is spoken
        inside = [w for w in words if start - 1.0 <= w.start <= end + 1.0]
        assert inside, (start, end, [(w.start, w.text) for w in words])
        assert abs(inside[0].start - start) <= 1.0 and abs(inside[-1].end - end) <= 1.0
    for line in got.lines:  # no word is placed in the silence between sentences
        assert any(s - 1.0 <= line.start and line.end <= e + 1.0 for s, e, _ in truth)


def test_several_audio_tracks_take_the_default_one(tmp_path: Path) -> None:
    from fractions import Fraction

    import av

    path = tmp_path / "two.mkv"
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=5)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        tracks = [c.add_stream("aac", rate=16000) for _ in range(2)]
        for track, default in zip(tracks, (False, True), strict=True):
            track.layout = "mono"
            track.disposition = av.stream.Disposition.default if default else av.stream.Disposition(0)
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        for track, amp in zip(tracks, (0.0, 0.3), strict=True):  # the first track is silent
            x = (amp * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)).astype(np.float32)
            for s in range(0, len(x), 1024):
                af = av.AudioFrame.from_ndarray(x[s : s + 1024][None], format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = 16000, s, Fraction(1, 16000)
                for p in track.encode(af):
                    c.mux(p)
            for p in track.encode(None):
                c.mux(p)
    audio = load_audio(path)
    assert audio.reason is None and audio.seconds == pytest.approx(2.0, abs=0.1)
    assert audio.notes == ("2 audio tracks; transcribed track 2",)
