import logging

# stac-fastapi builds module-wide default settings when imported and warns that their title is unset; the
# STAC API sets its own per application (stac.py)
logging.getLogger("stac_fastapi.types.config").setLevel(logging.ERROR)
