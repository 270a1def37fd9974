"""The Cloud-Optimized GeoTIFF profile of every class map, confidence and cloud mask: written by the
monitor, stored by the catalog, read back by window."""

#: GDAL COG driver options: 256-pixel tiles, lossless DEFLATE, nearest-neighbour overviews (classes
#: must not be averaged).
COG_OPTIONS = {"COMPRESS": "DEFLATE", "BLOCKSIZE": "256", "OVERVIEW_RESAMPLING": "NEAREST", "PREDICTOR": "NO"}
