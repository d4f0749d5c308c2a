"""`detector drill`: an incident scenario of `replay/` sent to a running service as if it
happened now. `scenario.py` loads it, `shift.py` moves its times, `client.py` posts to the
intake, `watch.py` reads the service's outputs, `runner.py` runs the drill."""
