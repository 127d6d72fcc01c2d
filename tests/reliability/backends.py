"""Where a proof keeps sirsync's state: an SQLite file in its work directory (the default), or a new
table on a DynamoDB endpoint (moto's server on loopback), so that both stores face the same kills and
faults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from connectors.settings import DynamoDbSettings, Settings
from tests.dynamo import REGION, create_table, dynamo_environment, table_name

BACKENDS = ("sqlite", "dynamodb")


@dataclass(frozen=True)
class StateBackend:
    kind: str = "sqlite"
    endpoint: str = ""  # DynamoDB's, for ``dynamodb``

    def fresh(self, path: Path) -> dict[str, str]:
        """The settings (``SIRSYNC_*``) of a new, empty state besides ``SIRSYNC_STATE_PATH=path``:
        none for SQLite (the file is new), a new table for DynamoDB."""
        if self.kind == "sqlite":
            return {}
        return dynamo_environment(self.endpoint, create_table(self.endpoint, table_name(path.stem)))

    def settings(self, settings: Settings) -> Settings:
        """``settings`` keeping their state in a new, empty store of this kind."""
        variables = self.fresh(settings.state_path)
        if not variables:
            return settings
        dynamodb = DynamoDbSettings(
            table=variables["SIRSYNC_DYNAMODB__TABLE"],
            region=REGION,
            endpoint_url=variables["SIRSYNC_DYNAMODB__ENDPOINT_URL"],
        )
        return settings.model_copy(update={"state_backend": "dynamodb", "dynamodb": dynamodb})


SQLITE = StateBackend()
