"""``index --ray``: the transcript pass's words made by the cluster's actors, stored by the driver.

:class:`RayTranscripts` is the transcript pass's :class:`~vidsearch.indexer.transcribe.TranscriptMaker`
for a cluster run: the driver decides which videos need a transcript and commits each one as
it arrives (one transaction per video, exactly as a local run, so a killed driver loses at most
the video in hand and the re-run plans only what is left); a pool of :class:`TranscribeActor`
does the work: subtitle files and streams read where the files are, and speech recognized by
the backend each actor opens once.

It is a Ray Data pipeline of its own, after the vectors' pipeline and on the same connection,
rather than a third stage of that one: the pass also covers videos whose vectors are unchanged
(a subtitle file added beside one, a backend asked for the first time), which the vectors'
pipeline never sees, and a transcript that fails cannot hold back or fail a video's vectors.

A row is ``{"item", "path", "result"}``: the video's index in the pass, its path as the workers
see it, and (after the actor) the pickled :class:`~vidsearch.speech.transcript.Transcript` or
the one-line reason it failed.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidsearch.cluster.options import ClusterError, RayOptions
from vidsearch.cluster.pathmap import to_remote
from vidsearch.speech.backends import Transcriber, open_transcriber
from vidsearch.speech.sources import transcript_or_reason
from vidsearch.speech.transcript import Transcript

__all__ = ["RayTranscripts", "TranscribeActor"]

LOG = logging.getLogger(__name__)

# Whisper on the actors runs on their CPUs: they reserve no GPU (the encoders hold those).
ACTOR_DEVICE = "cpu"


class TranscribeActor:
    """Makes the transcripts of each row's video with a recognizer it opens once.

    Args:
        backend: the speech backend spec (``whisper[:SIZE]``, ``pocketsphinx``); None: subtitles only.
        device: where Whisper runs on this actor.
    """

    def __init__(self, backend: str | None, device: str = ACTOR_DEVICE) -> None:
        self.recognizer: Transcriber | None = open_transcriber(backend, device=device) if backend else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The transcript (or the reason there is none) of every row's video."""
        results = np.empty(len(batch["path"]), dtype=object)
        results[:] = [
            pickle.dumps(transcript_or_reason(Path(str(p)), self.recognizer), protocol=pickle.HIGHEST_PROTOCOL)
            for p in batch["path"]
        ]
        return {"item": np.asarray(batch["item"], dtype=np.int64), "path": batch["path"], "result": results}


class RayTranscripts:
    """The transcript pass's maker for a run on the connected cluster (see the module docstring).

    Args:
        ray_options: the run's cluster options (path map; one actor per decode worker, as many CPUs).
        backend: the speech backend spec; None: subtitles only.
        actor: the actor class (tests swap in one that misbehaves).
    """

    def __init__(self, ray_options: RayOptions, backend: str | None, actor: type = TranscribeActor) -> None:
        self.ray_options, self.backend, self.actor = ray_options, backend, actor

    def _dataset(self, paths: Sequence[str]) -> Any:
        import ray.data

        ro = self.ray_options
        rows = [{"item": i, "path": to_remote(p, ro.path_map), "result": b""} for i, p in enumerate(paths)]
        ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
        return ds.map_batches(
            self.actor,
            fn_constructor_kwargs={"backend": self.backend},
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=ro.decode_workers),
            num_cpus=ro.decode_cpus,
            udf_modifying_row_count=False,
        )

    def __call__(self, paths: Sequence[str]) -> Iterator[tuple[int, Transcript | str]]:
        """See :class:`~vidsearch.indexer.transcribe.TranscriptMaker`.

        A result Ray delivers twice (a task retried after its actor died) is dropped; a video
        the cluster returned nothing for is reported as failed (the next run tries it again).

        Raises:
            ClusterError: the actors could not start (a backend missing on a node) or the pipeline failed.
        """
        if not paths:
            return
        rows = iter(self._dataset(paths).iter_rows())
        seen: set[int] = set()
        try:
            for row in rows:
                item = int(row["item"])
                if item in seen or not 0 <= item < len(paths):
                    LOG.warning("dropped a repeated transcript for %s", row["path"])
                    continue
                seen.add(item)
                result = pickle.loads(row["result"])
                if not isinstance(result, (Transcript, str)):
                    raise ClusterError(f"a transcription actor returned {type(result).__name__}, not a transcript")
                yield item, result
        except ClusterError:
            raise
        except Exception as exc:  # noqa: BLE001 -- Ray wraps an actor's failure in several types: one line
            LOG.debug("the transcription pipeline failed", exc_info=True)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise ClusterError(f"transcription on the cluster failed: {first[:200]}") from None
        finally:
            closing = getattr(rows, "close", None)
            if closing is not None:
                closing()  # stops the streaming executor (see RayProducer.run)
        for item in sorted(set(range(len(paths))) - seen):
            yield item, "the cluster returned no transcript for this video; run the same command again"
