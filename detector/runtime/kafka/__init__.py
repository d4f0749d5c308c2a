"""The Kafka runtime: the embedded runtime's stages as Faust workers over Kafka topics.

- `topics`: the topic names.
- `control`: the control records (start, tick, idle, end) that carry event time and the
  end of a replay between stages, and `UpstreamClock`, the watermark over them.
- `partitioning`: which `detector.hits` partition a correlation hit goes to.
- `stages`: the raw stage (normalize and match) and one partition's correlator, plain
  objects without I/O.
- `app`: the Faust application that wires them to topics and tables.
- `replay`: `detector replay --kafka`: publish files, collect the detections.
"""
