"""The workspace service's tables (its own database only)."""

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from agenthq_common.plumbing import NAMING_CONVENTION


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
