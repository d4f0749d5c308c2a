"""Modifier names of the Sigma modifiers appendix v2.1 that pySigma 1.5 does not know.

The appendix defines `utf16le` and makes `wide` its alias; pySigma only registers
`wide`. Registering the name in pySigma's table (importing this package does it) lets
rules written to the specification parse.
"""

from __future__ import annotations

from sigma.modifiers import SigmaWideModifier, modifier_mapping

modifier_mapping.setdefault("utf16le", SigmaWideModifier)
