"""Where the Elasticsearch or OpenSearch cluster is, and how to authenticate to it.

Credentials come from the environment or files (`SecretRef`), never from the
configuration file: an API key (Elasticsearch's base64 `id:key`) or a user name with a
password. TLS is verified against the system's CAs or `ca_file`.

```yaml
search:
  kind: elasticsearch            # or opensearch
  hosts: [https://es.example.com:9200]
  api_key: {env: DETECTOR_ES_API_KEY}
  ca_file: /etc/detector/es-ca.crt
```
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from detector.secrets import SecretError, SecretRef

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch, Elasticsearch
    from opensearchpy import AsyncOpenSearch, OpenSearch

Kind = Literal["elasticsearch", "opensearch"]


def search_errors() -> tuple[type[Exception], ...]:
    """What the clients raise when a cluster cannot be reached or refuses a request, and
    a credential that cannot be read. The clients are imported here, not with this
    module: they take a third of a second, which commands that never reach a cluster
    should not wait for (an `except` clause calls this only when an error is raised)."""
    import elastic_transport
    import elasticsearch
    import opensearchpy

    return (
        elastic_transport.TransportError,
        elasticsearch.ApiError,
        opensearchpy.TransportError,
        SecretError,
    )


class SearchConnection(BaseModel):
    """A cluster: which engine, its URLs and the credentials to use."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    kind: Kind = Field(default="elasticsearch", description="Which engine, so which client.")
    hosts: list[AnyHttpUrl] = Field(
        default_factory=lambda: [AnyHttpUrl("http://127.0.0.1:9200")], min_length=1
    )
    api_key: SecretRef | None = Field(default=None, description="Elasticsearch API key.")
    username: str | None = None
    password: SecretRef | None = None
    ca_file: Path | None = Field(default=None, description="CA bundle for https hosts.")
    verify_certs: bool = True
    request_timeout: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _one_auth(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("`username` and `password` go together")
        if self.api_key is not None and self.username is not None:
            raise ValueError("use either `api_key` or `username`/`password`, not both")
        if self.api_key is not None and self.kind == "opensearch":
            raise ValueError("OpenSearch takes `username`/`password`, not an `api_key`")
        return self

    def secrets(self) -> list[str]:
        """The credentials as read, for masking in errors."""
        return [ref.read() for ref in (self.api_key, self.password) if ref is not None]

    def _options(self, retries: int) -> dict[str, Any]:
        options: dict[str, Any] = {
            "hosts": [str(host).rstrip("/") for host in self.hosts],
            "verify_certs": self.verify_certs,
            "max_retries": retries,
        }
        if self.ca_file is not None:
            options["ca_certs"] = str(self.ca_file)
        if self.api_key is not None:
            options["api_key"] = self.api_key.read()
        if self.username is not None and self.password is not None:
            auth = (self.username, self.password.read())
            options["basic_auth" if self.kind == "elasticsearch" else "http_auth"] = auth
        if self.kind == "elasticsearch":
            options["request_timeout"] = self.request_timeout
        else:
            options["timeout"] = self.request_timeout
        return options

    def client(self, retries: int = 3) -> Elasticsearch | OpenSearch:
        """A synchronous client (replay). Reads the secrets."""
        from elasticsearch import Elasticsearch
        from opensearchpy import OpenSearch

        if self.kind == "elasticsearch":
            return Elasticsearch(**self._options(retries))
        return OpenSearch(**self._options(retries))

    def async_client(self, retries: int = 0) -> AsyncElasticsearch | AsyncOpenSearch:
        """An asyncio client (the sink, whose delivery worker does the retrying)."""
        from elasticsearch import AsyncElasticsearch
        from opensearchpy import AsyncOpenSearch

        if self.kind == "elasticsearch":
            return AsyncElasticsearch(**self._options(retries))
        return AsyncOpenSearch(**self._options(retries))
