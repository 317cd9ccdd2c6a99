"""Content-Type parsing with MLflow 3's 415 rules."""

from __future__ import annotations

from dataclasses import dataclass

from sigserve.errors import UnsupportedMediaType

SEED_FORMATS = ("pandas-split", "pandas-records")


@dataclass(frozen=True)
class MediaType:
    type: str
    params: dict[str, str]


def parse_content_type(header: str | None, supported: tuple[str, ...]) -> MediaType:
    if not header:
        raise UnsupportedMediaType(f"Missing Content-Type; supported types: {list(supported)}")
    main, *parameters = (part.strip() for part in header.split(";"))
    media = main.lower()
    params: dict[str, str] = {}
    for parameter in parameters:
        if parameter:
            key, _, value = parameter.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
    if media not in supported:
        raise UnsupportedMediaType(
            f"This predictor only supports the following content types: {list(supported)}. "
            f"Got {header!r}."
        )
    charset = params.pop("charset", "utf-8").lower()
    if charset != "utf-8":
        raise UnsupportedMediaType(f"The scoring server only supports UTF-8, got charset={charset!r}")
    fmt = params.get("format")
    if fmt is not None and not (media == "application/json" and fmt in SEED_FORMATS):
        raise UnsupportedMediaType(
            f"Unrecognized content type parameter format={fmt!r}; "
            f"application/json accepts format={' or format='.join(SEED_FORMATS)}"
        )
    unknown = sorted(set(params) - {"format"})
    if unknown:
        raise UnsupportedMediaType(f"Unrecognized content type parameters: {', '.join(unknown)}")
    return MediaType(media, params)
