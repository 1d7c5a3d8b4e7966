"""Cut a span of a video into an MP4 a browser plays: stream copy on a keyframe, else re-encoded.

A span that starts on a keyframe (within half a frame) is copied packet for packet: nothing is
decoded and the quality is the source's. Any other start would make a copied clip open on the
previous keyframe (a jump back) or on undecodable frames (a grey smear), so the video is decoded
from that keyframe and re-encoded from the span start: the clip's first frame is the source's
frame at the start. Audio is copied with copied video and re-encoded to AAC with re-encoded video
(copied audio packets cannot start mid-packet, re-encoded ones can), so both start together.
Timestamps start at 0 and the file is written with ``+faststart`` (playable while it downloads)
under a temporary name, then renamed: a crash never leaves half a clip at ``out``.

:func:`clip_output` and :func:`keyframe_span` are shared with the stream recorder's alert clips.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

from vidsearch.errors import InputError, MediaError
from vidsearch.media.info import check_file, media_error, short_reason

__all__ = ["Clip", "clip_output", "cut_clip", "h264_encoder", "keyframe_span"]

# Codecs an MP4 holds that browsers play (MPEG-4 Part 2 and HEVC are re-encoded: most browsers
# cannot play them), and the audio codecs an MP4 carries as they are.
COPY_VIDEO = frozenset({"h264", "vp9", "av1"})
COPY_AUDIO = frozenset({"aac", "mp3", "opus"})
# H.264 first (every browser), then VP9 (Chrome, Firefox, Safari 14+); MPEG-4 Part 2 only when the
# FFmpeg build has neither (it plays in desktop players, not in browsers).
ENCODERS = {"libx264": "h264", "libopenh264": "h264", "libvpx-vp9": "vp9", "mpeg4": "mpeg4"}  # -> the codec
SEEK_MARGIN = 1.0  # seconds decoded before the span: audio interleaved just ahead of its keyframe

P = TypeVar("P")


@dataclass(frozen=True)
class Clip:
    """A clip written by :func:`cut_clip`.

    Attributes:
        path: the MP4 file.
        start: where it starts in the source (seconds; the first frame's time).
        end: where it ends in the source (clamped to the video's end).
        copied: True when the video was stream-copied, False when it was re-encoded.
        codec: the clip's video codec (FFmpeg's name).
        audio: whether the clip has an audio track.
    """

    path: Path
    start: float
    end: float
    copied: bool
    codec: str
    audio: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "path": str(self.path),
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "duration": round(self.end - self.start, 3),
            "copied": self.copied,
            "codec": self.codec,
            "audio": self.audio,
        }


def h264_encoder() -> str:
    """The first encoder of :data:`ENCODERS` this FFmpeg build has.

    Raises:
        MediaError: none of them (an FFmpeg build without video encoders).
    """
    import av

    for name in ENCODERS:
        with contextlib.suppress(av.codec.codec.UnknownCodecError, ValueError):
            av.codec.Codec(name, "w")
            return name
    raise MediaError("this FFmpeg build has no H.264, VP9 or MPEG-4 encoder to cut clips with")


@contextlib.contextmanager
def clip_output(out: Path, fmt: str = "mp4") -> Iterator[Any]:
    """An output container for a clip at ``out``: written under a temporary name, renamed when done.

    MP4 gets ``+faststart`` (the index first, so a browser plays it while it downloads). On an
    error (or Ctrl-C) the temporary file is deleted and ``out`` is untouched.
    """
    import av

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    options = {"movflags": "+faststart"} if fmt == "mp4" else {}
    try:
        with av.open(str(tmp), "w", format=fmt, options=options) as container:
            yield container
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def keyframe_span(packets: Iterable[tuple[float, P, bool]], start: float, end: float) -> Iterator[tuple[float, P]]:
    """The packets a copy of ``[start, end]`` needs: from the keyframe at or before ``start`` on.

    Args:
        packets: ``(time, packet, is_keyframe)`` in decode order, times in seconds.
        start: the span's start; packets before the last keyframe at or before it are dropped.
        end: the span's end; packets shown from it on are dropped, except those that a frame
            shown before it (a B-frame) is decoded from.

    Yields:
        ``(time, packet)`` in decode order.
    """
    pending: list[tuple[float, P]] = []  # from the last keyframe on, until `start` is reached
    tail: list[tuple[float, P]] = []  # shown after `end`: kept only if a later frame is in range
    started = False
    for t, packet, key in packets:
        if not started:
            if key and t <= start:
                pending = []
            if t < start:
                pending.append((t, packet))
                continue
            started = True
            yield from pending
        if t >= end:  # the span is half-open: the frame shown at `end` belongs to what follows
            if key:
                return  # the next group of pictures: nothing of the span follows
            tail.append((t, packet))
            continue
        yield from tail
        tail = []
        yield t, packet


# -- cutting a file ------------------------------------------------------------------------------


def _open(path: Path) -> Any:
    import av

    check_file(str(path))
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise media_error(str(path), f"not a readable video: {short_reason(exc)}") from None
    if not container.streams.video:
        container.close()
        raise media_error(str(path), "has no video stream")
    return container


def _duration(container: Any, stream: Any) -> float:
    tb = float(stream.time_base or Fraction(1, 1000))
    if stream.duration:
        return float(stream.duration) * tb
    if container.duration:
        return float(container.duration) / 1_000_000
    return 0.0


@dataclass(frozen=True)
class _Source:
    """What cutting needs to know of the input's streams."""

    video: Any
    audio: Any | None
    origin: float  # the video stream's first time: span times count from it
    frame: float  # one frame period, seconds


def _source(container: Any) -> _Source:
    video = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    tb = float(video.time_base or Fraction(1, 1000))
    rate = float(video.average_rate or video.guessed_rate or 25)
    return _Source(video, audio, float(video.start_time or 0) * tb, 1.0 / max(rate, 1e-3))


def _seek(container: Any, src: _Source, t: float) -> None:
    import av

    tb = float(src.video.time_base or Fraction(1, 1000))
    with contextlib.suppress(av.FFmpegError):  # a file that cannot seek is read from its start
        container.seek(int(max(0.0, src.origin + t - SEEK_MARGIN) / tb), stream=src.video, backward=True)


def _keyframe_at(container: Any, src: _Source, start: float) -> float | None:
    """The time of a keyframe within half a frame of ``start``, or None."""
    _seek(container, src, start)
    tb = float(src.video.time_base)
    for packet in container.demux(src.video):
        if packet.pts is None or not packet.is_keyframe:
            continue
        t = float(packet.pts) * tb - src.origin
        if abs(t - start) <= src.frame / 2:
            return t
        if t > start:
            return None
    return None


def cut_clip(path: str | os.PathLike[str], start: float, end: float, out: str | os.PathLike[str]) -> Clip:
    """Write ``[start, end]`` (seconds) of the video at ``path`` to the MP4 ``out``.

    Args:
        path: the source video.
        start: span start, seconds from the video's first frame.
        end: span end; clamped to the video's end.
        out: the MP4 to write (replaced atomically; its folder is created).

    Raises:
        InputError: an empty span, or one that starts past the end of the video.
        MediaError: the file cannot be read as a video.
    """
    import av

    source, target = Path(path), Path(out)
    if not (start >= 0 and end > start):  # also refuses NaN
        raise InputError(
            f"is empty or reversed ({start:g} to {end:g} s); the end must come after the start",
            argument="start/end",
        )
    container = _open(source)
    try:
        src = _source(container)
        duration = _duration(container, src.video)
        end = min(end, duration) if duration > 0 else end
        if start >= end:
            raise InputError(
                f"is past the end of {source.name} ({duration:.3f} s long; got {start:g} s)",
                argument="start",
                path=source,
            )
        try:
            keyframe = _keyframe_at(container, src, start)
            copy = keyframe is not None and src.video.codec_context.name in COPY_VIDEO
            _seek(container, src, start)
            if copy:
                assert keyframe is not None
                return _copy(container, src, keyframe, end, target)
            return _encode(container, src, start, end, target)
        except av.FFmpegError as exc:
            raise media_error(str(source), f"cannot be cut: {short_reason(exc)}") from None
        except OSError as exc:  # the clip's folder: missing rights, a full disk
            raise InputError(
                f"{target} cannot be written: {short_reason(exc)}",
                argument="out",
                path=target,
                hint="choose a folder you can write to, with free space",
            ) from None
        except MediaError as exc:
            if exc.path is not None:
                raise
            raise media_error(str(source), exc.what) from None
    finally:
        container.close()


def _copy(container: Any, src: _Source, start: float, end: float, out: Path) -> Clip:
    """Copy the packets of ``[start, end]`` (``start`` on a keyframe); audio copied or re-encoded."""
    vtb = src.video.time_base
    copy_audio = src.audio is not None and src.audio.codec_context.name in COPY_AUDIO
    streams = [src.video] + ([src.audio] if src.audio is not None else [])
    with clip_output(out) as clip:
        ovideo = clip.add_stream_from_template(src.video)
        oaudio = None
        if src.audio is not None:
            oaudio = clip.add_stream_from_template(src.audio) if copy_audio else _audio_stream(clip, src.audio)
        audio = _AudioCut(src.audio, oaudio, start, end, copy_audio, src.origin) if oaudio is not None else None
        shift = round((src.origin + start) / float(vtb))

        def video_packets() -> Iterator[tuple[float, Any, bool]]:
            for packet in container.demux(streams):
                if packet.stream is src.video:
                    if packet.pts is not None and packet.size:
                        yield float(packet.pts * vtb) - src.origin, packet, bool(packet.is_keyframe)
                elif audio is not None and packet.size:
                    audio.feed(clip, packet)

        for _, packet in keyframe_span(video_packets(), start, end):
            dts = packet.dts if packet.dts is not None else packet.pts
            packet.pts, packet.dts = packet.pts - shift, dts - shift
            packet.stream = ovideo
            clip.mux(packet)
        if audio is not None:
            audio.drain(clip, container)
    return Clip(out, start, end, True, src.video.codec_context.name, audio is not None and audio.written > 0)


def _audio_stream(clip: Any, template: Any) -> Any:
    stream = clip.add_stream("aac", rate=template.codec_context.sample_rate or 48000)
    stream.layout = template.codec_context.layout.name if template.codec_context.layout else "stereo"
    return stream


class _AudioCut:
    """The audio of ``[start, end]``: packets copied whole, or decoded, trimmed to the sample and encoded."""

    def __init__(self, istream: Any, ostream: Any, start: float, end: float, copy: bool, origin: float) -> None:
        self.istream, self.ostream, self.copy = istream, ostream, copy
        self.start, self.end, self.origin = start, end, origin
        self.written = 0
        self.next_pts = 0  # the next encoded sample, at the output's sample rate

    def feed(self, clip: Any, packet: Any) -> None:
        """Take one demuxed packet of the input's audio stream."""
        if packet.pts is None:
            return
        tb = self.istream.time_base
        t = float(packet.pts * tb) - self.origin
        if self.copy:
            if self.start - 1e-3 <= t < self.end:
                shift = round((self.origin + self.start) / float(tb))
                packet.pts -= shift
                packet.dts = packet.pts
                packet.stream = self.ostream
                clip.mux(packet)
                self.written += 1
            return
        for frame in packet.decode():
            self._encode(clip, frame)

    def _encode(self, clip: Any, frame: Any) -> None:
        import av

        rate = frame.sample_rate
        t = float(frame.pts * frame.time_base) - self.origin if frame.pts is not None else self.start
        first = max(0, round((self.start - t) * rate))
        last = min(frame.samples, round((self.end - t) * rate))
        if last <= first:
            return
        samples = frame.to_ndarray()
        planar = frame.format.is_planar
        part = (
            samples[:, first:last]
            if planar
            else samples[:, first * len(frame.layout.channels) : last * len(frame.layout.channels)]
        )
        cut = av.AudioFrame.from_ndarray(part.copy(), format=frame.format.name, layout=frame.layout.name)
        cut.sample_rate = rate
        cut.time_base = Fraction(1, rate)
        cut.pts = self.next_pts
        self.next_pts += last - first
        for out in self.ostream.encode(cut):
            clip.mux(out)
            self.written += 1

    def drain(self, clip: Any, container: Any) -> None:
        """Read the audio on to the span's end (it is interleaved after the last frame's packet), then finish."""
        for packet in container.demux(self.istream):
            if packet.pts is not None and float(packet.pts * self.istream.time_base) - self.origin >= self.end:
                break
            self.feed(clip, packet)
        self.flush(clip)

    def flush(self, clip: Any) -> None:
        """Finish the track (the encoder's last packets)."""
        if not self.copy:
            for out in self.ostream.encode(None):
                clip.mux(out)
                self.written += 1


def _encode(container: Any, src: _Source, start: float, end: float, out: Path) -> Clip:
    """Decode from the keyframe before ``start`` and encode the frames of ``[start, end]``."""
    vtb = src.video.time_base
    name = h264_encoder()
    half = src.frame / 2
    with clip_output(out) as clip:
        width, height = src.video.codec_context.width // 2 * 2, src.video.codec_context.height // 2 * 2
        ovideo = clip.add_stream(name, rate=src.video.average_rate or Fraction(25))
        ovideo.width, ovideo.height, ovideo.pix_fmt = width, height, "yuv420p"
        ovideo.codec_context.time_base = vtb
        ovideo.options = {"preset": "veryfast", "crf": "18"} if name == "libx264" else {}
        if name in ("mpeg4", "libvpx-vp9"):
            ovideo.codec_context.bit_rate = 8_000_000
        oaudio = _audio_stream(clip, src.audio) if src.audio is not None else None
        audio: _AudioCut | None = None
        early: list[Any] = []  # audio read before the first frame is decoded (its time is not known yet)
        base: float | None = None  # the first frame's time: the clip's 0
        streams = [src.video] + ([src.audio] if src.audio is not None else [])
        done = False
        for packet in container.demux(streams):
            if packet.stream is not src.video:
                if packet.size:
                    early.append(packet) if audio is None else audio.feed(clip, packet)
                continue
            for frame in packet.decode():
                t = float(frame.pts * vtb) - src.origin if frame.pts is not None else None
                if t is None or t < start - half:
                    continue
                if t >= end - 1e-6:
                    done = True
                    break
                if base is None:
                    base = t
                    if getattr(frame, "rotation", 0):  # a phone's upright: the player turns the picture
                        ovideo.set_display_rotation(frame.rotation)
                    if oaudio is not None:
                        audio = _AudioCut(src.audio, oaudio, base, end, False, src.origin)
                        for waiting in early:
                            audio.feed(clip, waiting)
                picture = frame.reformat(width=width, height=height, format="yuv420p")
                picture.pts = round((t - base) / float(vtb))
                picture.time_base = vtb
                for p in ovideo.encode(picture):
                    clip.mux(p)
            if done:
                break
        if base is None:
            raise MediaError(f"no frame decodes between {start:.3f} and {end:.3f} s")
        for p in ovideo.encode(None):
            clip.mux(p)
        if audio is not None:
            audio.drain(clip, container)
    return Clip(out, base, end, False, ENCODERS[name], audio is not None and audio.written > 0)
