"""Stream addresses as they may be shown: without the credentials camera URLs often carry.

A camera's URL is usually ``rtsp://user:password@host/…``, sometimes with a token in its query.
A stream is named by its URL when no name is given, and names and addresses are shown in the
terminal, in alert lines, on the web page and in the recordings' folder names: all use :func:`redact_uri`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["redact_uri"]

# Query parameters that carry credentials in camera URLs (…?user=admin&password=…, tokens).
_SECRET_KEYS = re.compile(r"pass|pwd|secret|token|key|auth|sig", re.IGNORECASE)


def redact_uri(uri: str) -> str:
    """``uri`` without its password (``rtsp://admin@cam/…``) or credential query values."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET_KEYS.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
