"""The catalog schema: products, their segmentations (one per model version) and per-class statistics.

PostGIS holds the footprints (EPSG:4326) and acquisition times for area/date queries (one GiST index over
both); the
per-class statistics answer category queries; ``search_document`` (a tsvector over class names and
product metadata, GIN index) answers free-text search. Rasters live in the COG store; rows hold their
URLs and georeferencing. The schema is created and upgraded by the Alembic migrations beside this file,
and a test checks that they produce exactly these tables.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from earthsignature.core.classes import ClassShare, LandCoverClass
from earthsignature.core.manifest import ModelCard
from earthsignature.core.raster_codec import pack_rgb, unpack_rgb
from earthsignature.service.catalog.observations import Tallies

NAMING = {"ix": "ix_%(table_name)s_%(column_0_name)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
          "fk": "fk_%(table_name)s_%(column_0_name)s", "pk": "pk_%(table_name)s"}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[str] = mapped_column(String(128), unique=True)
    tile_id: Mapped[str] = mapped_column(String(8), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    processing_level: Mapped[str] = mapped_column(String(8))
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    footprint = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False)
    cloud_cover: Mapped[float | None] = mapped_column(Float)
    quicklook_url: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    segmentations: Mapped[list[Segmentation]] = relationship(back_populates="product", cascade="all, delete-orphan")

    # area and time in one GiST index (btree_gist): the area-and-dates query reads it alone (migration 0003)
    __table_args__ = (Index("ix_products_footprint_time", "footprint", "start_time", postgresql_using="gist"),)


class Segmentation(Base):
    __tablename__ = "segmentations"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_pk: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(32))
    raster_url: Mapped[str] = mapped_column(String(1024))
    confidence_url: Mapped[str | None] = mapped_column(String(1024))
    cloud_mask_url: Mapped[str | None] = mapped_column(String(1024))
    crs: Mapped[str] = mapped_column(String(64))
    geotransform: Mapped[list[float]] = mapped_column(ARRAY(Float, dimensions=1))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    search_document = mapped_column(TSVECTOR, nullable=False)
    #: what the model was trained and tested on (``ModelCard.to_dict``); None for maps published without one
    model_card: Mapped[dict | None] = mapped_column(JSONB, nullable=True)

    @property
    def card(self) -> ModelCard | None:
        """The stored model card as the record it was sent as."""
        return ModelCard.from_dict(self.model_card) if self.model_card else None
    #: the observed map (classes under a clear sky, clouds, no data) and its pixels of each kind; None for maps
    #: stored before clouds were told apart (migration 0004)
    observed_url: Mapped[str | None] = mapped_column(String(1024))
    clear_pixels: Mapped[int | None] = mapped_column(BigInteger)
    cloud_pixels: Mapped[int | None] = mapped_column(BigInteger)
    nodata_pixels: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    product: Mapped[Product] = relationship(back_populates="segmentations")

    @property
    def tallies(self) -> Tallies | None:
        if self.clear_pixels is None:
            return None
        return Tallies(self.clear_pixels, self.cloud_pixels or 0, self.nodata_pixels or 0)
    classes: Mapped[list[ClassStatistic]] = relationship(back_populates="segmentation", cascade="all, delete-orphan",
                                                         order_by="ClassStatistic.value")

    __table_args__ = (
        UniqueConstraint("product_pk", "model_name", "model_version", name="uq_segmentations_product_model"),
        Index("ix_segmentations_search_document", "search_document", postgresql_using="gin"),
    )


def class_slug_sql(name: sa.ColumnElement) -> sa.ColumnElement:
    """A class name as a property name part (``Burnt areas`` -> ``burnt_areas``, ``queryables.class_slug``)
    in SQL, written with constants, not parameters: the share index is on this expression, and the planner
    uses it only for the same expression."""

    def constant(text: str) -> sa.ColumnElement:
        return sa.literal_column(f"'{text}'")

    return sa.func.btrim(sa.func.regexp_replace(sa.func.lower(name), constant("[^a-z0-9]+"), constant("_"),
                                                constant("g")), constant("_"))


#: The share index's predicate (classes a map holds), a constant for the same reason.
PRESENT = sa.literal_column("0")


class ClassStatistic(Base):
    __tablename__ = "class_statistics"

    segmentation_id: Mapped[int] = mapped_column(ForeignKey("segmentations.id", ondelete="CASCADE"),
                                                 primary_key=True)
    value: Mapped[int] = mapped_column(Integer, primary_key=True)  # pixel value in the raster
    code: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(128))
    color: Mapped[int] = mapped_column(Integer)  # 0xRRGGBB
    pixel_count: Mapped[int] = mapped_column(BigInteger)
    fraction: Mapped[float] = mapped_column(Float)
    #: the map's acquisition start (its product's, which never changes): the share index by time reads the
    #: newest maps holding a class first (migration 0005)
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    segmentation: Mapped[Segmentation] = relationship(back_populates="classes")

    @classmethod
    def from_share(cls, share: ClassShare, start_time: datetime) -> ClassStatistic:
        land_cover = share.land_cover
        return cls(value=land_cover.index, code=land_cover.code, name=land_cover.name,
                   color=pack_rgb(land_cover.color), pixel_count=share.pixel_count, fraction=share.fraction,
                   start_time=start_time)

    def to_share(self) -> ClassShare:
        return ClassShare(LandCoverClass(self.code, self.name, unpack_rgb(self.color), self.value),
                          self.pixel_count, self.fraction)

    __table_args__ = (
        Index("ix_class_statistics_lower_name", func.lower(name)),
        # a CQL2 filter on a class share (fraction:burnt > 0.2) finds its maps here (migration 0003)
        Index("ix_class_statistics_share", class_slug_sql(name), fraction, postgresql_where=pixel_count > PRESENT),
        # ... and the newest of them first, their shares read from the index (migration 0005)
        Index("ix_class_statistics_share_time", class_slug_sql(name), start_time.desc(), segmentation_id.desc(),
              postgresql_include=["fraction"], postgresql_where=pixel_count > PRESENT),
    )
