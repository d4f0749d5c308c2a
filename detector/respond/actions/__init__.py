"""Response actions, one module per system; importing this package registers them all."""

from detector.respond.actions import github, gitlab, jenkins, kubernetes, vault

__all__ = ["github", "gitlab", "jenkins", "kubernetes", "vault"]
