"""Response actions, one module per system; `base.registered()` imports them all."""
