"""Lead pseudonyms: what leadscore's own topics and tables carry instead of a lead id.

A pseudonym is ``p_`` + the first 20 bytes of HMAC-SHA256(secret, lead id), in hex. The
same id always gives the same pseudonym (so a lead's records stay in order on one
partition and the worker finds its state), and without the secret nobody can tell which
id it stands for, or check a guess. leadscore keeps the way back (pseudonym -> id) only in
Redis, and erasure deletes it (docs/privacy.md).
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "p_"


def pseudonym(secret: bytes, lead_id: str) -> str:
    """The pseudonym of ``lead_id`` under ``secret``.

    Examples:
        >>> pseudonym(b"k" * 32, "jane@example.com")
        'p_424fcebed56d1a1762e3175fea30fbd87e9c531e'
    """
    digest = hmac.new(secret, lead_id.encode(), hashlib.sha256).digest()[:20]
    return PREFIX + digest.hex()


def is_pseudonym(value: str) -> bool:
    """Whether ``value`` has the shape of a pseudonym."""
    return len(value) == len(PREFIX) + 40 and value.startswith(PREFIX)
