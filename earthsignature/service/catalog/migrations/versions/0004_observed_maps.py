"""Segmentations: the observed map (classes under a clear sky, clouds, no data) and its pixels of each kind.

Maps stored before have none (NULL): their statistics are counted from the class map and cloud mask.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PIXEL_COLUMNS = ("clear_pixels", "cloud_pixels", "nodata_pixels")


def upgrade() -> None:
    op.add_column("segmentations", sa.Column("observed_url", sa.String(1024), nullable=True))
    for name in PIXEL_COLUMNS:
        op.add_column("segmentations", sa.Column(name, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    for name in ("observed_url", *PIXEL_COLUMNS):
        op.drop_column("segmentations", name)
