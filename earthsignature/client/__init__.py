"""The pilots' side of the API: the Python client and pictures of its results."""

from earthsignature.client.api_client import EarthSignatureClient, Encoding, Result

__all__ = ["EarthSignatureClient", "Encoding", "Result"]
