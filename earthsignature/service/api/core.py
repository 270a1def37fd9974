"""The Database service without its transports: who is asking, the queries, ingestion, map access and the STAC
search, as plain methods on typed records (``records``), under the request budgets.

gRPC (``servicer``), the HTTP bindings (``http_app``), the STAC API (``stac``) and the map files
(``map_files``) are adapters: they read the caller's certificate from their TLS layer, translate their
messages into these records, call, and turn ``errors.ApiError`` into their own status. This module imports
no transport, and the catalog below it sees no protobuf.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TypeVar

import sqlalchemy as sa
from geoalchemy2.shape import to_shape
from rasterio.errors import RasterioError
from shapely.geometry.base import BaseGeometry

from earthsignature.core import raster_codec
from earthsignature.core.classes import class_code
from earthsignature.core.cog import CLOUD_COLOR, legend_sidecars
from earthsignature.core.settings import ApiLimits
from earthsignature.service.api import access_tokens, stac_items, validation
from earthsignature.service.api.auth import (
    ROLES,
    AuthError,
    Caller,
    RevocationList,
    RevocationUnavailable,
    caller_from_pem,
    format_serial,
)
from earthsignature.service.api.budget import Deadline, WorkSlots
from earthsignature.service.api.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    excerpt,
)
from earthsignature.service.api.map_render import Clouds
from earthsignature.service.api.records import (
    ChangeQuery,
    ItemPage,
    ItemSearch,
    Links,
    MapAnswer,
    MapExtent,
    MapQuery,
    StatisticsQuery,
    TextQuery,
)
from earthsignature.service.api.signed_links import BadSignature, LinkSigner
from earthsignature.service.catalog import area_statistics, change, query_language, stac_filter
from earthsignature.service.catalog.area_statistics import DateStatistics
from earthsignature.service.catalog.catalog import (
    Catalog,
    CatalogError,
    Filters,
    Found,
    ModelCollection,
    PageKey,
)
from earthsignature.service.catalog.ingest import IngestError, OutcomeUnknown, Stored, Submission, ingest, settle
from earthsignature.service.catalog.items import item_id, item_keys
from earthsignature.service.catalog.parser_pool import ParserPool
from earthsignature.service.catalog.raster_store import RasterStore, UnsafePath

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Errors of a stored raster that cannot be read: that product is left out of the answer.
UNREADABLE_RASTER = (RasterioError, OSError, raster_codec.RasterCodecError)
#: The HTTP app's route to a product's quicklook.
QUICKLOOK_PATH = "/v1/products/{product_id}/quicklook.png"
#: The caller of ``serve --insecure`` (local development: every caller is internal).
INSECURE_CALLER = Caller("insecure-local", "internal", 0)


def _stored_files(segmentation, with_product: bool = False) -> dict[str, str | None]:
    """A segmentation's files in the store by the name its links give them (None: a layer it has not);
    ``with_product``: its product's quicklook too (as ``THUMBNAIL``; the product must be loaded with it)."""
    aux, style = legend_sidecars(segmentation.raster_url)
    files = {"classes.tif": segmentation.raster_url, "confidence.tif": segmentation.confidence_url,
             "cloud_mask.tif": segmentation.cloud_mask_url, "classes.tif.aux.xml": aux, "classes.qml": style}
    if with_product:
        files[stac_items.THUMBNAIL] = segmentation.product.quicklook_url
    return files


def quicklook_route(product_id: str) -> str:
    return QUICKLOOK_PATH.format(product_id=urllib.parse.quote(product_id, safe=""))


class DatabaseCore:
    def __init__(self, catalog: Catalog, store: RasterStore, limits: ApiLimits | None = None,
                 revoked: RevocationList | None = None, insecure: bool = False, public_url: str | None = None,
                 signer: LinkSigner | None = None):
        self.catalog, self.store, self.limits = catalog, store, limits or ApiLimits()
        #: signs the map links of answers (None: links need the client certificate, as the other routes)
        self.signer = signer
        #: the HTTP app's address for links in answers; None: no HTTP app, no links
        self.public_url = public_url.rstrip("/") if public_url else None
        self.revoked = revoked or RevocationList(None)
        self.insecure = insecure
        #: CQL2 filters are parsed in these worker processes, each parse under a time and memory budget
        self.parsers = ParserPool(self.limits.parse_processes, self.limits.parse_timeout_s,
                                  self.limits.parse_memory_mb)
        #: ingestions whose commit's outcome could not be known: settled when the database answers again
        self._unsettled: list[OutcomeUnknown] = []
        self._unsettled_lock = threading.Lock()
        #: map queries do their work (catalog search, window reads, encoding) in these, a few at a time
        self.work_slots = WorkSlots(self.limits.work_slots)

    def close(self) -> None:
        """Stop the parser processes and the work slots (the server is stopping)."""
        self.parsers.close()
        self.work_slots.close()

    # -- who is asking ---------------------------------------------------------------------------------------

    def authorize(self, certificate: bytes | None, token: str | None = None) -> Caller:
        """The caller named by the client certificate its TLS layer verified (PEM): readable, not revoked, with
        a role; without a certificate, the pilot an access token (HTTP's bearer token) was issued to. Which role
        a call needs is the call's own check (``require``)."""
        if self.insecure:
            return INSECURE_CALLER
        if not certificate and token:
            return self._token_holder(token)
        if not certificate:
            raise Unauthenticated("a client certificate signed by the project CA is required (over HTTP, or an "
                                  "access token: Authorization: Bearer, from GET /v1/token)")
        try:
            caller = caller_from_pem(certificate)
        except AuthError as error:
            raise Unauthenticated(str(error)) from error
        self._check_not_revoked(caller.serial)
        if caller.role not in ROLES:
            raise PermissionDenied(f"certificate of {excerpt(caller.common_name)} has no role")
        return caller

    def _check_not_revoked(self, serial: int) -> None:
        try:
            revoked = serial in self.revoked
        except RevocationUnavailable as error:
            raise Unavailable(str(error)) from error
        if revoked:
            raise Unauthenticated(f"certificate serial {format_serial(serial)} is revoked")

    def _token_holder(self, token: str) -> Caller:
        if self.signer is None:
            raise Unauthenticated("this server issues no access tokens: present your client certificate")
        try:
            holder = access_tokens.verify(self.signer, token)
        except BadSignature as error:
            raise Unauthenticated(str(error)) from error
        self._check_not_revoked(holder.serial)
        return Caller(holder.common_name, "pilot", holder.serial)

    def access_token(self, caller: Caller) -> access_tokens.AccessToken:
        """A bearer token standing for ``caller``'s certificate on the HTTP routes, for a while
        (``access_tokens``): pilots only, and only to a caller who presented the certificate itself."""
        self.require(caller, "pilot")
        if self.signer is None or self.insecure:
            raise FailedPrecondition("this server issues no access tokens (no signing keys, or insecure mode)")
        return access_tokens.issue(self.signer, caller.common_name, caller.serial)

    @staticmethod
    def require(caller: Caller, role: str) -> None:
        if caller.role != role:
            raise PermissionDenied(f"{excerpt(caller.common_name)} ({caller.role}) may not do this: the {role} "
                                   "role is required")

    def deadline(self, client_remaining_s: float | None = None) -> Deadline:
        """A request's budget: ``limits.request_deadline_s``, or the client's own shorter deadline."""
        return Deadline.within(self.limits.request_deadline_s, client_remaining_s)

    # -- maps for pilots -----------------------------------------------------------------------------------

    def list_maps(self, caller: Caller, query: MapQuery, deadline: Deadline) -> Iterator[MapAnswer]:
        """The segmentations matching ``query``, newest first, each with its maps read for the area."""
        max_pixels = self._max_pixels(query.max_pixels)
        codes, names = self._categories(query.categories)
        filters = Filters(
            area=query.area, start=query.start, end=query.end, product_ids=query.product_ids,
            tile_ids=query.tile_ids, model_names=query.model_names, category_codes=codes, category_names=names,
            min_category_fraction=query.min_category_fraction, max_cloud_cover=query.max_cloud_cover,
            words=query.words, limit=self._results(query.results), page_token=query.page_token)
        yield from self._answers(filters, max_pixels, deadline, caller)

    def search_maps(self, caller: Caller, query: TextQuery, deadline: Deadline) -> Iterator[MapAnswer]:
        """A text query (``query_language``), answered as ``list_maps`` answers its translation."""
        try:
            parsed = query_language.parse(query.text)
        except query_language.QuerySyntaxError as error:
            raise InvalidArgument(None, str(error)) from error
        translated = MapQuery(
            area=parsed.area, start=parsed.start, end=parsed.end,
            product_ids=validation.identifiers("query product", parsed.product_ids,
                                               validation.MAX_LENGTHS["product_id"]),
            tile_ids=validation.tile_ids("query tile", parsed.tile_ids),
            model_names=validation.identifiers("query model", parsed.model_names, validation.MAX_LENGTHS["model_name"]),
            categories=validation.categories("query class", parsed.categories),
            min_category_fraction=parsed.min_fraction, max_cloud_cover=parsed.max_cloud_cover,
            words=" ".join(parsed.words), results=query.results, page_token=query.page_token,
            max_pixels=query.max_pixels)
        yield from self.list_maps(caller, translated, deadline)

    def _results(self, asked: int | None) -> int:
        if asked is None or asked == 0:
            return self.limits.default_results
        if asked < 0 or asked > self.limits.max_results:
            raise InvalidArgument("n_results", f"must be in 1..{self.limits.max_results}, got {asked}")
        return asked

    def _max_pixels(self, asked: int) -> int:
        if asked < 0 or asked > self.limits.max_pixels:
            raise InvalidArgument("max_pixels", f"must be in 0..{self.limits.max_pixels}, got {asked}")
        return asked or self.limits.default_pixels

    def _categories(self, tokens: tuple[str, ...]) -> tuple[tuple[int, ...], tuple[str, ...]]:
        codes, names = [], []
        for token in tokens:
            if not self.catalog.known_category(token):
                raise InvalidArgument(None, f"unknown category {excerpt(token)}: no stored segmentation has a class "
                                            "with that name or code")
            code = class_code(token)
            if code is not None:
                codes.append(code)
            else:
                names.append(token.strip().lower())
        return tuple(codes), tuple(names)

    def _answers(self, filters: Filters, max_pixels: int, deadline: Deadline, caller: Caller) -> Iterator[MapAnswer]:
        try:
            found = self.work_slots.run(deadline, "to search the catalog", self.catalog.search, filters)
        except CatalogError as error:
            raise InvalidArgument(None, str(error)) from error
        for sent, item in enumerate(found):
            deadline.check(f"after {sent} of {len(found)} results: ask fewer results (n_results), a smaller area "
                           "or a lower max_pixels")
            try:
                yield self.work_slots.run(deadline, f"to read maps, after {sent} of {len(found)} results",
                                          self._answer, item, filters.area, max_pixels, caller)
            except UNREADABLE_RASTER as error:  # one damaged map must not fail the whole answer
                log.error("left %s (%s) out of an answer: its stored raster is unreadable: %s",
                          item.segmentation.product.product_id, item.segmentation.model_name, error)

    def _answer(self, item: Found, area: BaseGeometry | None, max_pixels: int, caller: Caller) -> MapAnswer:
        segmentation = item.segmentation
        classes = self._window(segmentation.raster_url, area, max_pixels)
        extras = {name: self._window(url, area, max_pixels) if url else None
                  for name, url in (("cloud_mask", segmentation.cloud_mask_url),
                                    ("confidence", segmentation.confidence_url))}
        return MapAnswer(item, classes, extras["cloud_mask"], extras["confidence"], self.links(item, caller))

    def _window(self, url: str, area: BaseGeometry | None, max_pixels: int):
        # the footprint intersects the area but the raster's valid part may not: then one pixel of it
        return self.store.read(url, area, max_pixels) or self.store.read(url, None, 1)

    # -- how much ---------------------------------------------------------------------------------------------

    def area_statistics(self, caller: Caller, query: StatisticsQuery, deadline: Deadline) -> list[DateStatistics]:
        """The area of each class inside ``query.area`` per acquisition date, clouds, no data and uncovered
        parts apart (the rules: ``catalog.area_statistics``)."""
        area_ha = self._countable_area(query.area)
        self.check_collection(caller, query.model_name)
        codes, names = self._categories(query.categories)
        plans = self.work_slots.run(deadline, "to search the catalog", self._plan_statistics, query)

        def keep(land_cover) -> bool:
            return not (codes or names) or land_cover.code in codes or land_cover.name.lower() in names

        return [self._date_statistics(date_plan, area_ha, keep, deadline) for date_plan in plans]

    def area_change(self, caller: Caller, query: ChangeQuery, deadline: Deadline) -> change.Change:
        """What changed inside ``query.area`` between its two periods (the rules: ``catalog.change``)."""
        self._countable_area(query.area)
        self.check_collection(caller, query.model_name)
        legend = [share.land_cover for share in self.catalog.legend(query.model_name)]
        from_values = self._class_values(query.model_name, legend, query.from_categories)
        to_values = self._class_values(query.model_name, legend, query.to_categories)
        before, after = self.work_slots.run(deadline, "to search the catalog", self._maps_to_count, query.area,
                                            query.model_name, [query.before, query.after])
        advice = "comparing the periods: ask for shorter periods or a smaller area"
        return self.work_slots.run(deadline, advice, change.compare, query.area, before, after, self.store,
                                   from_values, to_values, lambda: deadline.check(advice))

    def _plan_statistics(self, query: StatisticsQuery) -> list[area_statistics.DatePlan]:
        found = self._maps_to_count(query.area, query.model_name, [(query.start, query.end)])[0]
        return area_statistics.plan(query.area, found)

    def _countable_area(self, area: BaseGeometry) -> float:
        """The area's hectares, when it is within the statistics' limit."""
        area_ha = area_statistics.geodesic_hectares(area)
        limit = self.limits.statistics_max_area_km2
        if area_ha / 100 > limit:
            raise InvalidArgument("wkt", f"covers {area_ha / 100:,.0f} km², more than the {limit:,.0f} km² one "
                                         "request may count (api.limits.statistics_max_area_km2): ask for smaller "
                                         "areas")
        return area_ha

    def _maps_to_count(self, area: BaseGeometry, model_name: str, periods) -> list[list]:
        """The model's maps in the area for each (start, end) period, within ``statistics_max_maps`` in all."""
        limit = self.limits.statistics_max_maps
        found = [[item.segmentation for item in self.catalog.search(Filters(
            area=area, start=start, end=end, model_names=(model_name,), limit=limit + 1))] for start, end in periods]
        if sum(len(maps) for maps in found) > limit:
            raise InvalidArgument(None, f"more than {limit} maps of {model_name} fall in this area and period, the "
                                        "most one request may count (api.limits.statistics_max_maps): ask for a "
                                        "shorter period or a smaller area")
        return found

    @staticmethod
    def _class_values(model_name: str, legend: list, tokens: tuple[str, ...]) -> frozenset[int]:
        """The pixel values of the classes of the model's ``legend`` named by ``tokens`` (names or codes)."""
        values = set()
        for token in tokens:
            code = class_code(token)
            matches = {c.index for c in legend if (c.code == code if code is not None
                                                   else c.name.lower() == token.strip().lower())}
            if not matches:
                raise InvalidArgument(None, f"{excerpt(token)} is not a class of {model_name}; its classes: "
                                            f"{', '.join(c.name for c in legend)[:400]}")
            values |= matches
        return frozenset(values)

    def _date_statistics(self, date_plan, area_ha: float, keep, deadline: Deadline) -> DateStatistics:
        counts = []
        for segmentation, region in zip(date_plan.maps, date_plan.regions, strict=True):
            advice = f"counting {date_plan.day}: ask for a shorter period or a smaller area"
            deadline.check(advice)
            counts.append(self.work_slots.run(deadline, advice, area_statistics.count_map, segmentation, region,
                                              self.store))
        return area_statistics.summarize(date_plan, counts, area_ha, keep)

    # -- ingestion ---------------------------------------------------------------------------------------------

    def create_product(self, caller: Caller, submission: Submission) -> Stored:
        """Store a segmented product (the internal role: the monitor); re-sending it changes nothing."""
        self.require(caller, "internal")
        self.settle_unknown_outcomes()  # before a re-send stores the same product again
        try:
            stored = ingest(submission, self.catalog, self.store)
        except (IngestError, UnsafePath) as error:
            raise InvalidArgument(None, str(error)) from error
        except OutcomeUnknown as unknown:
            with self._unsettled_lock:
                self._unsettled.append(unknown)
            raise
        log.info("product %s segmentation %s (%s)", stored.product_id, stored.segmentation_id,
                 "created" if stored.created else "already there")
        return stored

    def settle_unknown_outcomes(self) -> None:
        """Files kept by earlier unknown outcomes: removed where their rows did not land, once the database can
        tell (those it still cannot tell about wait for the next call)."""
        with self._unsettled_lock:
            pending, self._unsettled = self._unsettled, []
        waiting = [unknown for unknown in pending if not settle(unknown, self.catalog, self.store)]
        with self._unsettled_lock:
            self._unsettled.extend(waiting)

    # -- map files -------------------------------------------------------------------------------------------

    def map_file(self, caller: Caller, collection: str, item: str, file_name: str) -> str:
        """The store URL of one of a segmentation's files (its product's quicklook among them, as
        ``THUMBNAIL``), or ``NotFound``/``InvalidArgument``."""
        if file_name == stac_items.THUMBNAIL:  # the product's: found with it (a map file's lookup loads no product)
            urls = _stored_files(self.find_item(caller, collection, item).segmentation, with_product=True)
        else:
            urls = _stored_files(self._segmentation(collection, item))
        if not urls.get(file_name):
            raise NotFound(f"{item[:120]} has no file {file_name[:40]!r}; files: "
                           f"{', '.join(name for name, url in urls.items() if url)}")
        return urls[file_name]

    def picture_source(self, caller: Caller, collection: str, item: str) -> tuple[str, Clouds | None]:
        """What a map's web pictures and tiles are drawn from: its class map (in its colour table) and its cloud
        mask, whose clouded pixels are drawn in ``CLOUD_COLOR`` (None: a map without a cloud mask)."""
        segmentation = self._segmentation(collection, item)
        clouds = Clouds(segmentation.cloud_mask_url, (*CLOUD_COLOR, 255)) if segmentation.cloud_mask_url else None
        return segmentation.raster_url, clouds

    def map_extent(self, caller: Caller, collection: str, item: str) -> MapExtent:
        """A stored map's lon/lat bounds (its footprint's, as its STAC item gives them) and pixel size."""
        segmentation = self.find_item(caller, collection, item).segmentation  # its product loaded with it
        west, south, east, north = stac_items.bbox(to_shape(segmentation.product.footprint))
        return MapExtent((west, south, east, north), abs(float(segmentation.geotransform[1])))

    def _segmentation(self, collection: str, item: str):
        """The stored segmentation of a STAC item of a collection, or ``NotFound``/``InvalidArgument``."""
        for name, value in (("collection", collection), ("item", item)):
            validation.identifier(name, value, 256, required=True)
        segmentation = next(filter(None, (self.catalog.find_segmentation(*key) for key in
                                          item_keys(item, collection))), None)
        if segmentation is None:
            raise NotFound(f"no item {item[:120]} in collection {collection[:80]}")
        return segmentation

    def quicklook(self, caller: Caller, product_id: str) -> bytes:
        validation.identifier("product_id", product_id, validation.MAX_LENGTHS["product_id"], required=True)
        url = self.catalog.product_quicklook(product_id)
        if url is None:
            raise NotFound(f"no quicklook for product {product_id[:80]}")
        return self.store.read_bytes(url)

    def links(self, found: Found, caller: Caller | None = None) -> Links:
        """A segmentation's STAC item, class-map COG and quicklook as the HTTP app serves them; the COG's link
        signed for ``caller`` (it opens without a certificate until it expires)."""
        if not self.public_url:
            return Links()
        segmentation, product = found.segmentation, found.segmentation.product
        item = item_id(product.product_id, segmentation.model_name, segmentation.model_version)
        signed, stored = self.signed_folder(found, caller), self.store_links(found, caller)
        map_url = stored.get("classes.tif") or self.public_url + stac_items.map_file_route(
            segmentation.model_name, item, "classes.tif", signed)
        return Links(self.public_url + stac_items.item_route(segmentation.model_name, item), map_url,
                     self.quicklook_link(found, signed, stored))

    def quicklook_link(self, found: Found, signed: str = "", stored: dict[str, str] | None = None) -> str:
        """The link to a segmentation's product quicklook: the store's pre-signed URL (``stored``), else the
        item's ``signed`` folder's ``THUMBNAIL``, else the certificate route; "" without a quicklook."""
        segmentation, product = found.segmentation, found.segmentation.product
        if not product.quicklook_url or not self.public_url:
            return ""
        if stored and stored.get(stac_items.THUMBNAIL):
            return stored[stac_items.THUMBNAIL]
        if signed:
            item = item_id(product.product_id, segmentation.model_name, segmentation.model_version)
            return self.public_url + stac_items.map_file_route(segmentation.model_name, item, stac_items.THUMBNAIL,
                                                               signed)
        return f"{self.public_url}{quicklook_route(product.product_id)}"

    def signs_links_for(self, caller: Caller | None) -> bool:
        """Whether answers to ``caller`` carry links that open without a certificate (a signer, a caller, TLS)."""
        return self.signer is not None and caller is not None and not self.insecure

    def signed_folder(self, found: Found, caller: Caller | None) -> str:
        """The signed folder that opens every file of a segmentation for ``caller`` ("" when links are not
        signed: no signer, no caller, or insecure mode)."""
        if not self.signs_links_for(caller):
            return ""
        segmentation = found.segmentation
        item = item_id(segmentation.product.product_id, segmentation.model_name, segmentation.model_version)
        return self.signer.sign(stac_items.map_files_scope(segmentation.model_name, item), caller.common_name)

    def store_links(self, found: Found, caller: Caller | None) -> dict[str, str]:
        """The object store's own pre-signed URLs of a segmentation's stored files, by file name, for a caller
        whose links are signed (``signed_folder``): the bytes then come from the store, not through this
        service. Empty for a store that cannot sign (a folder): the signed folder's links stand."""
        if not self.store.remote or not self.signs_links_for(caller):
            return {}
        links = {name: self.store.presigned_url(url, self.limits.link_lifetime_s)
                 for name, url in _stored_files(found.segmentation, with_product=True).items() if url}
        return {name: link for name, link in links.items() if link}

    def authorize_map_files(self, certificate: bytes | None, collection: str, item: str,
                            signed: dict[str, str] | None, token: str | None = None) -> Caller:
        """The caller of a map-file request: a signed folder's (its parts; no certificate needed), else the
        certificate's or the access token's. A bad signature is PERMISSION_DENIED (403), whatever certificate
        comes with it."""
        if signed is None:
            return self.authorize(certificate, token)
        if self.signer is None:
            raise PermissionDenied("this server does not sign links: present your client certificate")
        try:
            name = self.signer.verify(stac_items.map_files_scope(collection, item), signed)
        except BadSignature as error:
            raise PermissionDenied(str(error)) from error
        return Caller(name, "pilot", 0)

    # -- the STAC API ----------------------------------------------------------------------------------------

    def search_items(self, caller: Caller, search: ItemSearch, deadline: Deadline,
                     present: Callable[[ItemPage], T]) -> T:
        """One page of STAC items (segmentations by area, period, collection, id and CQL2 filter), as
        ``present`` writes it. The filter is parsed in a parser process; the catalog search and ``present``
        run in one work-slot turn (CPU work in as many threads as cores: ``api.limits.work_slots``)."""
        limit = min(int(search.limit or self.limits.default_results), self.limits.max_results)
        for name, values in (("ids", search.ids), ("collections", search.collections)):
            if len(values) > validation.MAX_ITEMS:
                raise InvalidArgument(name, f"may hold at most {validation.MAX_ITEMS} values, got {len(values)}")
        try:
            expression = stac_filter.parse(search.filter, search.filter_lang, self.parsers,
                                           self.limits.max_filter_terms) if search.filter else None
            filters = Filters(area=search.area, start=search.start, end=search.end, model_names=search.collections,
                              item_ids=search.ids, expression=expression, limit=limit + 1, page_token=search.token)
            key = filters.page_key  # a page token this server did not issue: refused before a slot is taken
        except (stac_filter.FilterError, CatalogError) as error:
            raise InvalidArgument(None, str(error)) from error
        return self.work_slots.run(deadline, "to search the catalog",
                                   lambda: present(self._item_page(filters, key, limit)))

    def _item_page(self, filters: Filters, key: PageKey | None, limit: int) -> ItemPage:
        try:
            found, matched = self.catalog.search_counted(filters, self.limits.max_matched)
        except (stac_filter.FilterError, CatalogError) as error:  # a property no queryable names, ...
            raise InvalidArgument(None, str(error)) from error
        # one more answer than the page was asked for: whether there is a page beyond, on the side read
        if key is not None and key.newer:  # the page before a key: newer pages may lie beyond, older ones do
            page = found[-limit:]
            newer, older = len(found) > limit, True
        else:
            page = found[:limit]
            newer, older = key is not None, len(found) > limit
        return ItemPage(page, next_token=page[-1].page_key.token() if page and older else None,
                        prev_token=page[0].page_key.before().token() if page and newer else None, matched=matched)

    def find_item(self, caller: Caller, collection: str, item: str) -> Found:
        found = self.catalog.search(Filters(model_names=(collection,), item_ids=(item,), limit=1))
        if not found:
            raise NotFound(f"no item {item[:120]!r} in collection {collection[:80]!r}")
        return found[0]

    def collections(self, caller: Caller, name: str | None = None) -> list[ModelCollection]:
        """One summary per model with maps (only ``name``'s: ``NotFound`` when it has none)."""
        summaries = self.catalog.collections(name)
        if name is not None and not summaries:
            raise NotFound(f"no collection {name[:80]!r}: the catalog has no maps of that model")
        return summaries

    def check_collection(self, caller: Caller, name: str) -> None:
        if not self.catalog.has_model(name):
            raise NotFound(f"no collection {name[:80]!r}: the catalog has no maps of that model")

    def class_names(self, caller: Caller, collection: str | None = None) -> list[str]:
        if collection is not None:
            self.check_collection(caller, collection)
        return self.catalog.class_names(collection)

    # -- health ----------------------------------------------------------------------------------------------

    def ping(self, caller: Caller) -> None:
        """Whether the catalog answers (raises the database's error when it does not)."""
        with self.catalog.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
