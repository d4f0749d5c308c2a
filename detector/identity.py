"""The identity map: one canonical name for each person and service across systems.

Every system names the same actor its own way: GitHub login `alice-gh`, Kubernetes user
`alice@example.com`, the OIDC subject `repo:acme/payments:ref:refs/heads/main` a
pipeline assumes a cloud role with. Correlation rules that follow one actor from system
to system group on `user.identity`, which the normalize stage sets from this map
(this module reads and validates the file; `detector.identity_map` resolves names):

```yaml
identities:
  alice:                                   # the canonical name
    github: [alice-gh]                     # event.source: the user.name values there
    kubernetes: ["alice@example.com"]
    cloudtrail: ["repo:acme/payments:*"]   # `*`: any run of characters
  deploy-bot:
    github: ["deploy-bot[bot]"]            # every other character is literal
    kubernetes: ["system:serviceaccount:ci:deployer"]
```

- A source key is an `event.source` name (built in or declared); its names are matched
  against `user.name` case-insensitively. A single name may be written without a list.
- Every `user.name` resolves to at most one identity: a name two canonical names claim
  (both list it, one lists it and the other's pattern matches it, or two patterns match
  some common name) is an error when the map is loaded.
- An unmapped `user.name` becomes its own `user.identity`. A correlation grouped by a
  missing field leaves the event out of every group, so an identity left absent would
  hide from identity-grouped rules exactly the accounts nobody mapped (an attacker's own
  included). With the map, one rule grouped by `user.identity` follows mapped people
  across systems and still groups everyone else by name, as `user.name` would.
- An unmapped name equal to a canonical name is qualified by its source (`github:alice`):
  an account the map does not list is not that person, even when named like them. List
  every account of a person, including those spelled like the canonical name. Canonical
  names hold no `:`, so a qualified or unmapped `system:...` name never equals one.
- Without `user.name` (a declared source, an anonymous record) `user.identity` stays
  absent: nothing is invented.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from detector.identity_map import WILDCARD, IdentityMap, claims, pattern_regex


def _canonical_name(name: str) -> str:
    # A colon marks an unmapped name qualified by its source (`github:alice`).
    if not name or name != name.strip() or ":" in name or WILDCARD in name:
        raise ValueError(
            "a canonical name is text without ':' or '*' and without surrounding spaces"
        )
    return name


CanonicalName = Annotated[str, AfterValidator(_canonical_name)]
SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
Names = Annotated[
    list[Annotated[str, StringConstraints(min_length=1)]],
    BeforeValidator(lambda value: [value] if isinstance(value, str) else value),
]


class IdentityMapError(ValueError):
    """An identity map file that cannot be read or is invalid; the message says where."""


class IdentityMapFile(BaseModel):
    """The map file, validated: pass `context={"sources": names}` to check source keys."""

    model_config = ConfigDict(extra="forbid")

    identities: dict[CanonicalName, dict[SourceName, Names]] = Field(
        description="Canonical name → event.source → that source's user.name values "
        "(`*` wildcards allowed)."
    )

    @field_validator("identities")
    @classmethod
    def _known_sources(
        cls, identities: dict[str, dict[str, list[str]]], info: ValidationInfo
    ) -> dict[str, dict[str, list[str]]]:
        known = (info.context or {}).get("sources")
        if known is None:
            return identities
        for canonical, sources in identities.items():
            for source in sources:
                if source not in known:
                    names = ", ".join(sorted(known))
                    raise ValueError(f"{canonical}: unknown source {source!r} (known: {names})")
        return identities

    @model_validator(mode="after")
    def _one_identity_per_name(self) -> IdentityMapFile:
        spellings: dict[str, str] = {}
        for canonical in self.identities:
            first = spellings.setdefault(canonical.casefold(), canonical)
            if first != canonical:  # correlation groups compare names case-insensitively
                raise ValueError(f"{first} and {canonical} differ only in case")
        exact: dict[tuple[str, str], str] = {}
        patterns: list[tuple[str, str, str]] = []
        for source, canonical, name in claims(self.identities):
            if WILDCARD in name:
                patterns.append((source, canonical, name))
                continue
            owner = exact.setdefault((source, name), canonical)
            if owner != canonical:
                raise ValueError(
                    f"{source} name {name!r} is claimed by both {owner} and {canonical}"
                )
        for index, (source, canonical, pattern) in enumerate(patterns):
            regex = re.compile(pattern_regex(pattern))
            for (other_source, name), owner in exact.items():
                if other_source == source and owner != canonical and regex.fullmatch(name):
                    raise ValueError(
                        f"{source} name {name!r} of {owner} is also matched by the "
                        f"pattern {pattern!r} of {canonical}"
                    )
            for other_source, owner, other in patterns[:index]:
                if other_source == source and owner != canonical and _overlap(pattern, other):
                    raise ValueError(
                        f"{source} patterns {other!r} of {owner} and {pattern!r} of "
                        f"{canonical} both match some names"
                    )
        return self


def load_identity_map(path: Path, sources: Collection[str] | None = None) -> IdentityMap:
    """The map in the YAML file `path`; `sources`, when given, are the valid keys."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise IdentityMapError(f"{path}: {exc}") from exc
    return identity_map_from_data(data, sources, where=str(path))


def identity_map_from_data(
    data: Any, sources: Collection[str] | None = None, where: str = "identity map"
) -> IdentityMap:
    """The map in decoded YAML or JSON `data`; errors start with `where`."""
    if not isinstance(data, Mapping):
        raise IdentityMapError(f"{where}: the top level must be a mapping with `identities`")
    context = None if sources is None else {"sources": frozenset(sources)}
    try:
        return IdentityMap(IdentityMapFile.model_validate(data, context=context).identities)
    except ValidationError as exc:
        raise IdentityMapError(f"{where}: {_describe(exc)}") from None


class IdentitySettings(BaseModel):
    """Where the identity map is; without one, every user.name is its own identity."""

    model_config = ConfigDict(extra="forbid")

    map_file: Path | None = Field(
        default=None,
        description="YAML file mapping each person's and service's user names across "
        "sources onto one canonical user.identity.",
    )

    def load(self, sources: Collection[str] | None = None) -> IdentityMap:
        """The configured map (empty without a file); `sources`: the valid source keys."""
        return IdentityMap() if self.map_file is None else load_identity_map(self.map_file, sources)


def _overlap(first: str, second: str) -> bool:
    """Whether some name matches both `*` patterns: a search of the pairs of positions
    both patterns can reach after reading the same characters."""
    seen: set[tuple[int, int]] = set()
    pending = [(0, 0)]
    while pending:
        i, j = pending.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(first) and j == len(second):
            return True
        star_i = i < len(first) and first[i] == WILDCARD
        star_j = j < len(second) and second[j] == WILDCARD
        if star_i:  # the wildcard matches nothing more
            pending.append((i + 1, j))
        if star_j:
            pending.append((i, j + 1))
        if i < len(first) and j < len(second):  # one character both read
            if star_i and not star_j:
                pending.append((i, j + 1))
            elif star_j and not star_i:
                pending.append((i + 1, j))
            elif not star_i and first[i] == second[j]:
                pending.append((i + 1, j + 1))
    return False


def _describe(error: ValidationError) -> str:
    """Each error as `identities.alice.github.0: reason`."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        reason = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {reason}" if where else reason)
    return "; ".join(parts)
