"""Errors a user can act on: each names where the fault is (file, model, partition, column)."""

from __future__ import annotations


class AiopsError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(AiopsError):
    """The YAML config is invalid: names the file, the tenant/model and the field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        where: str | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.where = where
        self.field = field
        self.detail = message
        parts = [f"config {path}" if path else "config"]
        if where:
            parts.append(where)
        if field:
            parts.append(f"field '{field}'")
        super().__init__(f"{': '.join(parts)}: {message}")


class DataError(AiopsError):
    """Input data breaks the data contract: names the model, the partition and the column."""

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        partition: str | None = None,
        column: str | None = None,
    ) -> None:
        self.model = model
        self.partition = partition
        self.column = column
        self.detail = message
        where = ", ".join(
            f"{k}={v}"
            for k, v in (("model", model), ("partition", partition), ("column", column))
            if v is not None
        )
        super().__init__(f"[{where}] {message}" if where else message)

    def located(self, *, model: str | None = None, partition: str | None = None) -> DataError:
        """The same error with the model/partition filled in where they were unknown."""
        return DataError(
            self.detail,
            model=self.model or model,
            partition=self.partition or partition,
            column=self.column,
        )
