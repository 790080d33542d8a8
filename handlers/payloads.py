"""What buttons and modals carry: ids only. Every fact is re-read from the database."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domain.errors import InvalidInput

# Ids are 32-bit integer columns: a larger number in a forged value can name nothing
# (and would overflow SQLite's driver), so it is refused like any stale payload.
MAX_ID = 2**31 - 1


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def dump(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def load(cls, raw: str | None) -> Self:
        try:
            return cls.model_validate_json(raw or "")
        except ValidationError:
            raise InvalidInput(
                "That button or form is out of date; run the command again."
            ) from None


class ContractRef(_Payload):
    contract_id: int = Field(alias="c", ge=1, le=MAX_ID)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def dump(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class MilestoneRef(ContractRef):
    milestone_id: int = Field(alias="m", ge=1, le=MAX_ID)


class RequestRef(ContractRef):
    request_id: int = Field(alias="r", ge=1, le=MAX_ID)


class ModalContext(_Payload):
    """A modal's private_metadata: where it was opened and for which object."""

    channel_id: str = Field(alias="ch")
    contract_id: int | None = Field(default=None, alias="c", ge=1, le=MAX_ID)
    milestone_number: int | None = Field(default=None, alias="n", ge=1, le=MAX_ID)
    milestone_id: int | None = Field(default=None, alias="m", ge=1, le=MAX_ID)
    request_id: int | None = Field(default=None, alias="r", ge=1, le=MAX_ID)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def dump(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)
