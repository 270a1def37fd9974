"""Catalog: products, segmentations, class statistics.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import TSVECTOR

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("product_id", sa.String(128), nullable=False),
        sa.Column("tile_id", sa.String(8), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("processing_level", sa.String(8), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("footprint", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.Column("cloud_cover", sa.Float()),
        sa.Column("quicklook_url", sa.String(1024)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_products"),
        sa.UniqueConstraint("product_id", name="uq_products_product_id"),
    )
    op.create_index("ix_products_tile_id", "products", ["tile_id"])
    op.create_index("ix_products_start_time", "products", ["start_time"])
    op.create_index("ix_products_footprint", "products", ["footprint"], postgresql_using="gist")
    op.create_table(
        "segmentations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("product_pk", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("raster_url", sa.String(1024), nullable=False),
        sa.Column("confidence_url", sa.String(1024)),
        sa.Column("cloud_mask_url", sa.String(1024)),
        sa.Column("crs", sa.String(64), nullable=False),
        sa.Column("geotransform", sa.ARRAY(sa.Float(), dimensions=1), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("search_document", TSVECTOR(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_segmentations"),
        sa.ForeignKeyConstraint(["product_pk"], ["products.id"], name="fk_segmentations_product_pk",
                                ondelete="CASCADE"),
        sa.UniqueConstraint("product_pk", "model_name", "model_version", name="uq_segmentations_product_model"),
    )
    op.create_index("ix_segmentations_product_pk", "segmentations", ["product_pk"])
    op.create_index("ix_segmentations_search_document", "segmentations", ["search_document"],
                    postgresql_using="gin")
    op.create_table(
        "class_statistics",
        sa.Column("segmentation_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("color", sa.Integer(), nullable=False),
        sa.Column("pixel_count", sa.BigInteger(), nullable=False),
        sa.Column("fraction", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("segmentation_id", "value", name="pk_class_statistics"),
        sa.ForeignKeyConstraint(["segmentation_id"], ["segmentations.id"],
                                name="fk_class_statistics_segmentation_id", ondelete="CASCADE"),
    )
    op.create_index("ix_class_statistics_code", "class_statistics", ["code"])
    op.create_index("ix_class_statistics_lower_name", "class_statistics", [sa.text("lower(name)")])


def downgrade() -> None:
    op.drop_table("class_statistics")
    op.drop_table("segmentations")
    op.drop_table("products")
