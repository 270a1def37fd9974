"""What a pilot's QGIS makes of a map's links: run by Debian's Python with Debian's PyQGIS (offscreen), by
``benchmarks/qgis_check.py``, which judges the answer.

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 benchmarks/qgis_open_map.py CLASSES_URL STYLE_URL XYZ_TEMPLATE CA

Opens the class map by its link as QGIS's "Add Raster Layer > HTTP(S)" does (GDAL's /vsicurl/), loads the
item's QGIS style as "Load Style" does, adds the XYZ tiles as an "XYZ Layer", draws each layer over the map's
extent (the tiles: one whole tile at its zoom), and prints one JSON object: per layer, whether it opened, its
legend (value, label, colour) and the colours drawn (with their pixel counts). The service's certificate is
signed by the project's CA: QGIS is told to trust it (``CA``), as GDAL is by ``GDAL_CURL_CA_BUNDLE``.
"""

from __future__ import annotations

import collections
import json
import math
import sys
import urllib.parse
import urllib.request

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtNetwork import QSslCertificate, QSslConfiguration
from qgis.PyQt.QtXml import QDomDocument

SIZE = 256  # pixels a side of each drawing: one XYZ tile
MAX_MERCATOR = 20037508.342789244


def trust(ca_path: str) -> None:
    """Qt's network layer (QGIS's XYZ tiles) trusts the project CA besides the system's."""
    config = QSslConfiguration.defaultConfiguration()
    config.setCaCertificates(config.caCertificates() + QSslCertificate.fromPath(ca_path))
    QSslConfiguration.setDefaultConfiguration(config)


def legend(layer: QgsRasterLayer) -> list[dict]:
    renderer = layer.renderer()
    classes = renderer.classes() if hasattr(renderer, "classes") else []
    return [{"value": int(c.value), "label": c.label, "rgb": list(c.color.getRgb()[:3])} for c in classes]


def drawn(layer: QgsRasterLayer, extent, crs) -> dict[str, int]:
    """The colours QGIS draws for ``layer`` over ``extent`` (in ``crs``), opaque pixels only: "r,g,b" -> count."""
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(crs)
    settings.setExtent(extent)
    settings.setOutputSize(QSize(SIZE, SIZE))
    settings.setBackgroundColor(QColor(0, 0, 0, 0))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    counts = collections.Counter()
    for y in range(image.height()):
        for x in range(image.width()):
            colour = image.pixelColor(x, y)
            if colour.alpha() == 255:
                counts[f"{colour.red()},{colour.green()},{colour.blue()}"] += 1
    return dict(counts)


def whole_tile(bounds: QgsRectangle) -> QgsRectangle:
    """The Web Mercator bounds of the XYZ tile at the centre of ``bounds`` whose side is about their width."""
    world = 2 * MAX_MERCATOR
    zoom = max(0, min(18, math.floor(math.log2(world / bounds.width()))))
    span = world / 2 ** zoom
    column = math.floor((bounds.center().x() + MAX_MERCATOR) / span)
    row = math.floor((MAX_MERCATOR - bounds.center().y()) / span)
    west, north = -MAX_MERCATOR + column * span, MAX_MERCATOR - row * span
    return QgsRectangle(west, north - span, west + span, north)


def describe(layer: QgsRasterLayer, extent, crs) -> dict:
    if not layer.isValid():
        return {"valid": False, "error": layer.error().summary()}
    return {"valid": True, "provider": layer.providerType(), "renderer": layer.renderer().type(),
            "width": layer.width(), "height": layer.height(), "crs": layer.crs().authid(), "legend": legend(layer),
            "drawn": drawn(layer, extent, crs)}


def main(classes_url: str, style_url: str, xyz_template: str, ca_path: str) -> dict:
    trust(ca_path)
    answer = {}
    classes = QgsRasterLayer(f"/vsicurl/{classes_url}", "classes", "gdal")  # Add Raster Layer > HTTP(S)
    crs, extent = classes.crs(), classes.extent()
    answer["classes"] = describe(classes, extent, crs)
    if classes.isValid():
        styled = QgsRasterLayer(f"/vsicurl/{classes_url}", "classes, styled", "gdal")
        with urllib.request.urlopen(style_url, timeout=60) as response:  # the style asset, as a file saved
            document = QDomDocument()
            document.setContent(response.read())
        ok, message = styled.importNamedStyle(document)
        answer["styled"] = describe(styled, extent, crs) | {"style_loaded": ok, "style_message": message}
        mercator = QgsCoordinateReferenceSystem("EPSG:3857")
        to_mercator = QgsCoordinateTransform(crs, mercator, QgsProject.instance())
        source = "type=xyz&zmin=0&zmax=18&url=" + urllib.parse.quote(xyz_template, safe="")
        tiles = QgsRasterLayer(source, "tiles", "wms")  # Add Layer > XYZ Layer
        # one whole tile at its own resolution: the pixels as served, not as QGIS resamples them between zooms
        answer["tiles"] = describe(tiles, whole_tile(to_mercator.transformBoundingBox(extent)), mercator)
    return answer


if __name__ == "__main__":
    application = QgsApplication([], False)
    application.initQgis()
    try:
        print(json.dumps(main(*sys.argv[1:5])))
    finally:
        application.exitQgis()
