"""Response actions, one module per system; importing this package registers them all."""

from detector.respond.actions import jenkins, kubernetes, vault

__all__ = ["jenkins", "kubernetes", "vault"]
