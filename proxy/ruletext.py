"""Text that goes into rules: the one quoting function both rule renderers use.

Names reach rule text only after proxy/objects.py validated them as the API server would, so a
comment built from them holds letters, digits and `-./:` and words. This function is the
second line of defence, for the day a new caller forgets: whatever it is given, what it
returns is one double-quoted token, with no quote, backslash or line break inside, that
iptables-restore and `nft -f` both read as exactly one string.
"""

from __future__ import annotations

import re

# what a comment may hold: what validated names and podnet's own words are made of
_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,:;/=()+@%-]")
IPTABLES_COMMENT_MAX = 255  # xt_comment keeps 256 bytes with the NUL
NFT_COMMENT_MAX = 128  # NFT_USERDATA_MAXLEN holds the comment in 128 bytes of user data


def comment(text: str, limit: int = IPTABLES_COMMENT_MAX) -> str:
    """`text` as one quoted comment: anything outside the safe set becomes `?`, and it is cut
    to `limit` characters (after replacement, so the limit counts bytes too)."""
    return '"' + _UNSAFE.sub("?", text)[:limit] + '"'
