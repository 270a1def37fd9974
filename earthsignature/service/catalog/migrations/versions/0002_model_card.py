"""Segmentations: the model card of the model that made them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("segmentations", sa.Column("model_card", JSONB(), nullable=True))


def downgrade() -> None:
    op.drop_column("segmentations", "model_card")
