"""Settings for every test.

Property tests check behaviour, not speed: hypothesis' per-example deadline and its
too-slow health check would turn a loaded CI machine into failures, so both are off.
"""

from hypothesis import HealthCheck, settings

settings.register_profile("detector", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("detector")
