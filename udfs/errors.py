"""The one exception of the event contract (split out so that ``udfs.contract`` and the JSON-text
helpers of ``udfs.jsontext`` can both raise it without importing each other)."""
from __future__ import annotations


class ContractError(ValueError):
    """An event violates the contract.

    Attributes:
        reason: one of ``udfs.contract.REASONS`` (stable code, used for metrics and DLQ records).
        detail: human-readable detail (field path, offending value), at most a few hundred chars.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
