"""Storage fixtures: moto's S3 server for the session (``s3_server``)."""

from tests.support.s3 import s3_server

__all__ = ["s3_server"]
