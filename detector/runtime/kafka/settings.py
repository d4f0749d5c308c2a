"""The `kafka:` section of the configuration: where the broker is and the topics' shape."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class KafkaSettings(BaseModel):
    """With a `bootstrap`, `detector run` is a worker of the Kafka runtime."""

    model_config = ConfigDict(extra="forbid")

    bootstrap: str | None = Field(
        default=None, description="host:port[,host:port...] of the brokers; null: embedded."
    )
    app_id: str = Field(
        default="detector",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Consumer group of the workers and prefix of their changelog topics.",
    )
    topic_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Put before every topic name (e.g. `staging.`).",
    )
    partitions: int = Field(
        default=4, ge=1, description="Partitions of every topic the workers create."
    )
    replication_factor: int = Field(default=1, ge=1, description="Of every topic created.")
    store: str = Field(
        default="memory://",
        pattern=r"^memory://$",
        description="Faust table store of the correlation state: in memory, rebuilt from "
        "the compacted changelog topic when a worker gets a partition.",
    )
    data_dir: Path = Field(
        default=Path("detector-kafka-data"),
        description="The worker's local directory (Faust keeps its own files there).",
    )
    batch: int = Field(default=500, ge=1, description="Records a stage takes at once.")
    session_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A worker silent for this long is considered dead and its partitions "
        "move to the others.",
    )
    idle_after_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A raw partition with no records for this long stops holding back the "
        "correlation watermark until it has records again.",
    )
    stalled_after_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A partition whose stage has been given nothing for this long while it "
        "holds records from the stage's position is read again from there.",
    )
