"""Showing names from outside (file names, URLs) safely on one line."""
from __future__ import annotations

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with everything that is not a printable character escaped, so it stays on one line and shows what
    it is: a newline becomes ``\\n``, a control character ``\\x1b``, an undecodable byte of a file name (a
    surrogate from ``os.fsdecode``) ``\\xff``, a line separator ``\\u2028``. Printable letters of any script are kept.
    """
    pieces = []
    for char in text:
        code = ord(char)
        if char in _NAMED_ESCAPES:
            pieces.append(_NAMED_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the raw byte of a name that is not valid UTF-8
            pieces.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable() and not 0xD800 <= code <= 0xDFFF:
            pieces.append(char)
        elif code < 0x100:
            pieces.append(f"\\x{code:02x}")
        elif code < 0x10000:
            pieces.append(f"\\u{code:04x}")
        else:
            pieces.append(f"\\U{code:08x}")
    return "".join(pieces)
