"""Corrections to pySigma 1.5's modifier table, applied when this package is imported.

- The appendix v2.1 defines `utf16le` and makes `wide` its alias; pySigma only
  registers `wide`, so rules written to the specification would not parse.
- pySigma's `base64offset` cuts its three encodings by the value's length in
  characters; the offsets depend on its length in bytes, so non-ASCII values got a
  wrong (even empty, matching everything) alternative.
"""

from __future__ import annotations

from base64 import b64encode

from sigma.modifiers import SigmaBase64OffsetModifier, SigmaWideModifier, modifier_mapping
from sigma.types import SigmaExpansion, SigmaString


class ByteLengthBase64OffsetModifier(SigmaBase64OffsetModifier):
    """`base64offset` with the offsets computed on the UTF-8 bytes of the value."""

    def modify(self, val: SigmaString) -> SigmaExpansion:
        if val.contains_special():
            return super().modify(val)  # pySigma's own error for wildcards
        data = bytes(val)
        return SigmaExpansion(
            [
                SigmaString(
                    b64encode(shift * b" " + data)[
                        self.start_offsets[shift] : self.end_offsets[(len(data) + shift) % 3]
                    ].decode()
                )
                for shift in range(3)
            ]
        )


modifier_mapping.setdefault("utf16le", SigmaWideModifier)
modifier_mapping["base64offset"] = ByteLengthBase64OffsetModifier
