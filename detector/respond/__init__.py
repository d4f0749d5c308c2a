"""Responders: playbooks turn detections into response actions, under one safety core."""
