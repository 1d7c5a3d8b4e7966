"""What is said, measured: recognizers on espeak-ng speech, phrase search on subtitles, and fusion.

    python benchmarks/speech_proof.py [--videos 16] [--backends pocketsphinx,whisper:tiny]

Three proof sets, all generated here (espeak-ng, PyAV, FFmpeg for embedded streams):

1. **Spoken**: sentences spoken word by word by espeak-ng (so every word's time is known) in
   videos; each available backend transcribes them on one core. Word error rate (jiwer),
   word-time error (|start| of each recognized word that matches a spoken word of the same
   sentence, and of each sentence's first word), real-time factor.
2. **Subtitled**: videos whose words come from sidecar ``.srt``/``.vtt`` files in several
   languages and encodings (UTF-8, UTF-8 with BOM, UTF-16, cp1252) and from embedded
   ``mov_text`` streams, transcribed by the real pass (:func:`transcribe_library`). Phrase
   queries (three consecutive words found in one line only) through the real :class:`TranscriptRetriever`:
   R@1 and the span error (start of the returned span against the phrase's first spoken word).
3. **Fusion**: queries that need both modalities (a spoken keyword shared by several videos plus
   a visual class shared by several others; one video has both). The said list is the real
   transcript retriever; the **seen list is simulated** (scores of the true class raised by a
   margin, plus noise) because no ViCLIP weights are on the test machines and the tiny fixture
   is random. It measures the fusion rule: reciprocal rank fusion against calibrated scores
   (each list's scores min-max scaled to [0, 1] and summed).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import speechgen  # noqa: E402

from vidsearch.errors import VidsearchError  # noqa: E402
from vidsearch.indexer.transcribe import transcribe_library  # noqa: E402
from vidsearch.retrieval import RetrievalQuery, fuse  # noqa: E402
from vidsearch.retrieval.transcripts import TranscriptRetriever  # noqa: E402
from vidsearch.search import VideoHit  # noqa: E402
from vidsearch.speech.audio import load_audio  # noqa: E402
from vidsearch.speech.backends import open_transcriber  # noqa: E402
from vidsearch.store.library import Library  # noqa: E402
from vidsearch.store.videos import upsert_video  # noqa: E402

SUBJECTS = ["the engineer", "my neighbour", "our teacher", "the captain", "a farmer", "the mayor", "her brother"]
VERBS = ["painted", "repaired", "opened", "described", "visited", "measured", "counted", "carried"]
ADJECTIVES = ["yellow", "wooden", "ancient", "narrow", "silver", "quiet", "broken", "golden"]
NOUNS = ["bridge", "window", "market", "garden", "tower", "river", "station", "kitchen"]
PLACES = ["near the harbour", "after lunch", "before dawn", "in the valley", "on monday", "by the lake"]
# Accented words for the non-English files: diacritics must fold (unicode61 remove_diacritics 2).
ACCENTED = {
    "fr": ["café", "élève", "forêt", "théâtre"],
    "de": ["Brücke", "Straße", "Mädchen"],
    "es": ["niño", "canción"],
}
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "cp1252"]
LANGUAGES = ["en", "fr", "de", "es"]


def sentence(rng: random.Random, language: str, used: set[str]) -> str:
    """A sentence no other line has (phrase queries must have one right answer)."""
    while True:
        words = [rng.choice(SUBJECTS), rng.choice(VERBS), "the", rng.choice(ADJECTIVES), rng.choice(NOUNS)]
        words.append(rng.choice(PLACES))
        if language != "en":
            words.insert(4, rng.choice(ACCENTED[language]))
        text = " ".join(words)
        if text not in used:
            used.add(text)
            return text


def on_one_core() -> None:
    """Pin the process to one CPU, so real-time factors are per core."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    os.environ["OMP_NUM_THREADS"] = "1"


# ------------------------------------------------------------------ 1. spoken


def spoken_set(
    root: Path, rng: random.Random, n_videos: int
) -> list[tuple[Path, list[list[tuple[float, float, str]]]]]:
    out = []
    used: set[str] = set()
    for i in range(n_videos):
        lines = [(0.5 + 6.0 * j, sentence(rng, "en", used)) for j in range(2)]
        words: list[list[tuple[float, float, str]]] = []
        path = root / f"spoken{i}.mp4"
        speechgen.write_spoken_video(path, lines, seconds=12.5, rate=[22050, 44100, 16000][i % 3], word_times=words)
        out.append((path, words))
    return out


def measure_backend(spec: str, videos: list[tuple[Path, list[list[tuple[float, float, str]]]]]) -> dict:
    import jiwer

    try:
        t0 = time.perf_counter()
        transcriber = open_transcriber(spec)
        load_s = time.perf_counter() - t0
    except VidsearchError as e:
        return {"backend": spec, "unavailable": str(e)}
    refs, hyps, word_err, first_err = [], [], [], []
    audio_s = busy_s = 0.0
    for path, truth in videos:
        audio = load_audio(path)
        assert audio.samples is not None, audio.reason
        t0 = time.perf_counter()
        lines, _ = transcriber.transcribe(audio.samples)
        busy_s += time.perf_counter() - t0
        audio_s += audio.seconds
        recognized = [w for line in lines for w in line.words]
        refs.append(" ".join(w for sent in truth for _, _, w in sent).lower())
        hyps.append(" ".join(w.text for w in recognized).lower() or "<nothing>")
        for sent in truth:
            s0, s1 = sent[0][0], sent[-1][1]
            heard = [w for w in recognized if s0 - 1.0 <= w.start <= s1 + 1.0]
            if heard:
                first_err.append(abs(heard[0].start - s0))
            for w in heard:
                same = [t for t in sent if t[2].lower() == w.text.lower().strip(".,!?")]
                if same:
                    word_err.append(min(abs(w.start - t[0]) for t in same))
    return {
        "backend": transcriber.name,
        "wer": jiwer.wer(refs, hyps),
        "words_matched": len(word_err),
        "word_start_error_median_s": statistics.median(word_err) if word_err else None,
        "sentence_start_error_mean_s": statistics.fmean(first_err) if first_err else None,
        "sentences_heard": f"{len(first_err)}/{sum(len(t) for _, t in videos)}",
        "rtf_one_core": busy_s / audio_s,
        "load_s": load_s,
    }


# ------------------------------------------------------------------ 2. subtitled


def subtitled_set(root: Path, rng: random.Random, n_videos: int, n_classes: int, keywords: list[str]):
    """Videos with subtitles from every source; returns per video its lines' word times and keyword/class."""
    folder = root / "subtitled"
    folder.mkdir(parents=True)
    used: set[str] = set()
    truth = []
    for i in range(n_videos):
        language = LANGUAGES[i % len(LANGUAGES)]
        keyword = keywords[(i // n_classes) % len(keywords)]
        texts = [sentence(rng, language, used) for _ in range(3)]
        texts[1] = f"{texts[1]} {keyword}"  # the spoken keyword of the fusion queries
        words: list[list[tuple[float, float, str]]] = []
        name = f"v{i:03d}.mp4"
        src = folder / name if i % 4 != 3 else root / f"src{i}.mp4"
        pattern = ["gradient", "moving_square", "noise", "gradient"][i % n_classes]
        speechgen.write_spoken_video(
            src, [(0.5 + 6.5 * j, t) for j, t in enumerate(texts)], seconds=20, word_times=words, pattern=pattern
        )
        cues = [(w[0][0], w[-1][1], " ".join(x[2] for x in w)) for w in words]
        if i % 4 == 3:  # an embedded mov_text stream
            srt = speechgen.write_srt(root / f"s{i}.srt", cues)
            speechgen.embed_subtitles(src, srt, folder / name, "mov_text", "eng")
        elif i % 2 == 0:
            speechgen.write_srt(folder / f"v{i:03d}.{language}.srt", cues, ENCODINGS[(i // 2) % len(ENCODINGS)])
        else:
            speechgen.write_vtt(folder / f"v{i:03d}.{language}.vtt", cues)
        truth.append({"path": folder / name, "words": words, "class": i % n_classes, "keyword": keyword})
    return truth


def make_library(root: Path, videos: list[dict]) -> Library:
    """A library holding the videos as indexed (rows only: the transcript pass needs no vectors)."""
    from vidsearch.media.fingerprint import fingerprint  # noqa: PLC0415

    lib = Library.open(root / "lib")
    with lib.write_session() as s:
        for v in videos:
            row, _ = upsert_video(s, str(v["path"]))
            st = v["path"].stat()
            row.size, row.mtime_ns, row.fingerprint = (
                st.st_size,
                st.st_mtime_ns,
                fingerprint(str(v["path"]), st.st_size),
            )
            row.status, row.duration = "indexed", 20.0
            s.flush()
            v["id"] = row.id
    return lib


def phrase_search(lib: Library, videos: list[dict], rng: random.Random) -> dict:
    hits1, span_err = 0, []
    n = 0
    # Only phrases that occur in one line have one right answer ("the engineer painted" recurs).
    grams: dict[str, int] = {}
    for v in videos:
        for sent in v["words"]:
            for at in range(len(sent) - 2):
                key = " ".join(w for _, _, w in sent[at : at + 3]).lower()
                grams[key] = grams.get(key, 0) + 1
    for v in videos:
        for sent in v["words"]:
            unique = [
                at for at in range(len(sent) - 2) if grams[" ".join(w for _, _, w in sent[at : at + 3]).lower()] == 1
            ]
            if not unique:
                continue
            at = rng.choice(unique)
            phrase = " ".join(w for _, _, w in sent[at : at + 3])
            found = TranscriptRetriever(lib, phrase).retrieve(RetrievalQuery(None, None, k=5))
            n += 1
            if found and found[0].video_id == v["id"]:
                hits1 += 1
                span_err.append(abs(found[0].start - sent[at][0]))
    return {
        "phrases": n,
        "r_at_1": hits1 / n,
        "span_start_error_median_s": statistics.median(span_err),
        "span_start_within_0_5s": sum(e <= 0.5 for e in span_err) / len(span_err),
    }


# ------------------------------------------------------------------ 3. fusion


def seen_list(videos: list[dict], cls: int, rng: random.Random, margin: float, noise: float) -> list[VideoHit]:
    """A simulated vector retriever: cosine-like scores, the asked class raised by ``margin``."""
    scored = [(0.25 + margin * (v["class"] == cls) + rng.gauss(0, noise), v) for v in videos]
    scored.sort(key=lambda x: -x[0])
    return [
        VideoHit(r, str(v["path"]), s, 0.0, 20.0, 20.0, v["id"], v["id"], "video") for r, (s, v) in enumerate(scored, 1)
    ]


def calibrated(lists: dict[str, list[VideoHit]], k: int) -> list[VideoHit]:
    """Score fusion: each list's scores min-max scaled to [0, 1], summed per video."""
    total: dict[int, float] = {}
    shown: dict[int, VideoHit] = {}
    for hits in lists.values():
        if not hits:
            continue
        lo, hi = min(h.score for h in hits), max(h.score for h in hits)
        for h in hits:
            total[h.video_id] = total.get(h.video_id, 0.0) + ((h.score - lo) / (hi - lo) if hi > lo else 1.0)
            shown.setdefault(h.video_id, h)
    best = sorted(total, key=lambda vid: -total[vid])[:k]
    return [shown[vid] for vid in best]


def fusion(lib: Library, videos: list[dict], rng: random.Random, margin: float, noise: float) -> dict:
    wins = {"seen": 0, "said": 0, "rrf": 0, "calibrated": 0}
    for v in videos:
        seen = seen_list(videos, v["class"], rng, margin, noise)
        said = TranscriptRetriever(lib).retrieve(RetrievalQuery(v["keyword"], None, k=len(videos)))
        ranked = {
            "seen": seen,
            "said": said,
            "rrf": fuse({"vectors": seen, "transcripts": said}, len(videos)),
            "calibrated": calibrated({"vectors": seen, "transcripts": said}, len(videos)),
        }
        for name, hits in ranked.items():
            wins[name] += bool(hits) and hits[0].video_id == v["id"]
    return {name: w / len(videos) for name, w in wins.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=16, help="subtitled videos (fusion queries: one per video)")
    ap.add_argument("--spoken", type=int, default=2, help="spoken videos (two sentences each) per backend")
    ap.add_argument("--backends", default="pocketsphinx,whisper:tiny")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--margin", type=float, default=0.03, help="simulated seen scores: the true class's lead")
    ap.add_argument("--noise", type=float, default=0.02, help="simulated seen scores: Gaussian noise")
    args = ap.parse_args()
    if speechgen.ESPEAK is None:
        sys.exit("espeak-ng is not installed: apt-get install espeak-ng (README, contributing)")
    on_one_core()
    rng = random.Random(args.seed)
    np.random.seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        spoken = spoken_set(root / "spoken", rng, args.spoken)
        print(f"spoken set: {len(spoken)} videos, {2 * len(spoken)} sentences ({time.perf_counter() - t0:.1f} s)")
        for spec in args.backends.split(","):
            r = measure_backend(spec.strip(), spoken)
            if "unavailable" in r:
                print(f"  {r['backend']:<16} unavailable: {r['unavailable']}")
                continue
            print(
                f"  {r['backend']:<16} WER {r['wer']:.2f}  word start error (median, {r['words_matched']} words) "
                f"{r['word_start_error_median_s'] if r['word_start_error_median_s'] is None else round(r['word_start_error_median_s'], 2)} s  "
                f"sentence start error {r['sentence_start_error_mean_s']:.2f} s ({r['sentences_heard']} heard)  "
                f"RTF {r['rtf_one_core']:.2f} on one core (load {r['load_s']:.1f} s)"
            )
        n_classes, keywords = 4, ["lighthouse", "orchestra", "volcano", "umbrella", "bicycle", "pyramid"]
        t0 = time.perf_counter()
        videos = subtitled_set(root, rng, args.videos, n_classes, keywords)
        with make_library(root, videos) as lib:
            report = transcribe_library(lib)
            print(
                f"subtitled set: {args.videos} videos ({report.transcribed} transcribed, {report.lines} lines; "
                f"srt/vtt in {', '.join(LANGUAGES)}, {', '.join(ENCODINGS)}, embedded mov_text) "
                f"({time.perf_counter() - t0:.1f} s)"
            )
            p = phrase_search(lib, videos, rng)
            print(
                f"  phrase search: R@1 {p['r_at_1']:.3f} over {p['phrases']} phrases; span start error median "
                f"{p['span_start_error_median_s']:.2f} s, within 0.5 s for {100 * p['span_start_within_0_5s']:.0f} %"
            )
            f = fusion(lib, videos, rng, args.margin, args.noise)
            print(
                f"  fusion (keyword + visual class, seen simulated: margin {args.margin}, noise {args.noise}): R@1 "
                f"seen {f['seen']:.2f}  said {f['said']:.2f}  RRF {f['rrf']:.2f}  calibrated {f['calibrated']:.2f}"
            )


if __name__ == "__main__":
    main()
