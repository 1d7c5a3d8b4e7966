"""Alert delivery by webhook: JSON POSTs from a thread of their own, never blocking ingestion.

:class:`Webhook.send` only queues (a bounded queue: when the receiver is slower than the alerts,
the oldest undelivered ones are dropped and counted). A sender thread POSTs each with a timeout
and a bounded number of retries with backoff, so a receiver that hangs or fails costs delivery
of its own alerts, never a window of the stream.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from vidsearch.errors import InputError
from vidsearch.media.live import DropOldest

__all__ = ["Webhook", "check_webhook_url"]

LOG = logging.getLogger(__name__)


def check_webhook_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host.

    Raises:
        InputError: anything else.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"{url!r}: give an http:// or https:// URL with a host", argument="on_alert")
    return url


class Webhook:
    """POSTs JSON payloads to ``url`` in the background.

    Args:
        url: the receiver.
        timeout: seconds per attempt.
        retries: attempts after the first one fails (a non-2xx answer or no answer).
        backoff: seconds before the first retry, doubled after each.
        max_pending: undelivered payloads kept; older ones are dropped.
    """

    def __init__(
        self, url: str, timeout: float = 5.0, retries: int = 3, backoff: float = 1.0, max_pending: int = 100
    ) -> None:
        self.url, self.timeout, self.retries, self.backoff = url, timeout, retries, backoff
        self._queue: DropOldest[dict[str, Any]] = DropOldest(max_pending)
        self._stop = threading.Event()
        self.delivered = 0
        self.failed = 0
        self._busy = False  # a payload is being delivered (retries included)
        self._thread = threading.Thread(target=self._run, name="vidsearch-webhook", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Payloads dropped because the receiver fell behind."""
        return self._queue.dropped

    def send(self, payload: dict[str, Any]) -> None:
        """Queue ``payload`` for delivery; returns at once."""
        self._queue.put(payload)

    def close(self, wait: float = 5.0) -> None:
        """Deliver what is pending for up to ``wait`` seconds, then stop."""
        deadline = time.monotonic() + wait
        while (len(self._queue) or self._busy) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join(timeout=max(0.0, deadline - time.monotonic()) + 0.1)

    def _run(self) -> None:
        while not self._stop.is_set():
            payload = self._queue.get(timeout=0.2)
            if payload is not None:
                self._busy = True
                try:
                    self._deliver(payload)
                finally:
                    self._busy = False

    def _deliver(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        wait = self.backoff
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"}, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    if 200 <= answer.status < 300:
                        self.delivered += 1
                        return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                LOG.info("webhook %s attempt %d failed: %s", self.url, attempt + 1, exc)
            if attempt < self.retries and self._stop.wait(wait):
                break
            wait *= 2
        self.failed += 1
        LOG.warning("webhook %s: alert %s not delivered", self.url, payload.get("id"))
