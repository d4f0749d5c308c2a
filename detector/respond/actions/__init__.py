"""Response actions, one module per system; importing this package registers them all."""
