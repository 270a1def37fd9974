"""Indexes for a continental catalog (benchmarks/catalog_scale.py, a million segmentations).

- Products: footprint and acquisition start in one GiST index (the btree_gist extension), replacing the
  footprint-only one: an area-and-dates query reads it alone, where PostgreSQL combined two bitmaps (1.1 ms
  at a million, 0.1 ms with it).
- Class statistics: the classes a map holds, by class slug and share: a CQL2 filter on a class share
  (``fraction:burnt > 0.2``) finds its maps there instead of reading every map's statistics, newest first,
  until enough match. The expression is ``tables.class_slug_sql``, written out: the planner uses the index
  only for the same one.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")  # a trusted extension: the catalog's owner may
    op.create_index("ix_products_footprint_time", "products", ["footprint", "start_time"], postgresql_using="gist")
    op.drop_index("ix_products_footprint", table_name="products")
    op.execute("CREATE INDEX ix_class_statistics_share ON class_statistics "
               "(btrim(regexp_replace(lower(name), '[^a-z0-9]+', '_', 'g'), '_'), fraction) WHERE pixel_count > 0")


def downgrade() -> None:
    op.drop_index("ix_class_statistics_share", table_name="class_statistics")
    op.create_index("ix_products_footprint", "products", ["footprint"], postgresql_using="gist")
    op.drop_index("ix_products_footprint_time", table_name="products")
