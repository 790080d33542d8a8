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


class ProposalRef(ContractRef):
    """A proposed split on a dispute card: the proposal it showed, so an agreement never
    lands on a newer one."""

    dispute_id: int = Field(alias="d", ge=1, le=MAX_ID)
    proposal: int = Field(alias="p", ge=1, le=MAX_ID)


class ContractPick(_Payload):
    """A button offering one of a channel's contracts to a command typed without
    `contract=`: the text as typed, the contract, and who typed it (only they may pick).
    The click runs the text again, with `contract=`, through the command's own path."""

    text: str = Field(alias="t", max_length=1_900)
    contract_id: int = Field(alias="c", ge=1, le=MAX_ID)
    user_id: str = Field(alias="u", min_length=1, max_length=32)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def dump(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


class HomePage(_Payload):
    """App Home's Previous / Next buttons: the page to show (0 is the first)."""

    page: int = Field(alias="p", ge=0, le=10_000)
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def dump(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


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
