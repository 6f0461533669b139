"""The options of a scan request, generated from the option dataclasses of ``fakescope.options``, so the API's
defaults, choices and help are the command line's (one definition each)."""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model, model_validator

from ..options import AnalysisOptions, OutputOptions

REQUEST_FIELDS: dict[type, tuple[str, ...]] = {
    AnalysisOptions: ("precision", "threshold", "aggregation"),
    OutputOptions: ("annotate", "plot", "heatmap", "heatmap_method", "report"),
}
"""The option fields a scan request may set (the rest, batch size and window, stay the server's)."""

SELECTION_FIELDS = {
    "every": (int, "analyse every Nth frame (at most one of every, frames, fps; default: every frame)"),
    "frames": (int, "analyse N evenly spaced frames"),
    "fps": (float, "analyse F frames per second"),
}


def _python_type(default: Any, annotation: str) -> Any:
    if isinstance(default, bool):
        return bool
    if "float" in annotation:
        return float
    if "int" in annotation:
        return int
    return str


def _request_field(field: dataclasses.Field) -> tuple[Any, Any]:
    """(type, pydantic Field) of one option field: its default, choices and help."""
    meta = field.metadata
    default = field.default
    annotation = str(field.type)
    kind: Any = Literal[meta["choices"]] if meta.get("choices") else _python_type(default, annotation)
    if default is None:
        kind = kind | None
    text = (meta.get("help") or "").replace("%(default)s", str(default))
    return kind, Field(default, description=text)


def _fields_of(concern: type, names: tuple[str, ...]) -> dict[str, tuple[Any, Any]]:
    by_name = {field.name: field for field in dataclasses.fields(concern)}
    return {name: _request_field(by_name[name]) for name in names}


class _ScanFormBase(BaseModel):
    @model_validator(mode="after")
    def _check_with_the_options(self) -> _ScanFormBase:
        """Each value goes through its option's own parser (ranges such as a probability), and the options are
        built once, so a value the command line refuses is refused here too (422)."""
        for concern, names in REQUEST_FIELDS.items():
            parsers = {field.name: field.metadata.get("type") for field in dataclasses.fields(concern)}
            for name in names:
                value, parse = getattr(self, name), parsers[name]
                if value is not None and parse is not None and not isinstance(value, bool):
                    try:
                        parse(str(value))
                    except Exception as error:  # noqa: BLE001 - argparse types raise several kinds
                        raise ValueError(f"{name}: {error}") from None
        to_options(self)
        return self


def _build_form_model() -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for concern, names in REQUEST_FIELDS.items():
        fields.update(_fields_of(concern, names))
    for name, (kind, text) in SELECTION_FIELDS.items():
        fields[name] = (kind | None, Field(None, description=text))
    return create_model("ScanOptions", __base__=_ScanFormBase, **fields)


ScanOptions = _build_form_model()
"""The scan options of a request (a pydantic model, sent as multipart form fields beside the file)."""


def to_options(form: BaseModel) -> tuple[AnalysisOptions, OutputOptions]:
    """The option objects of a request (ValueError for a combination they refuse)."""
    from ..video import FrameSelection

    values = form.model_dump()
    selection = FrameSelection.from_options(values["every"], values["frames"], values["fps"])
    analysis = AnalysisOptions(selection=selection,
                               **{name: values[name] for name in REQUEST_FIELDS[AnalysisOptions]})
    outputs = OutputOptions(**{name: values[name] for name in REQUEST_FIELDS[OutputOptions]})
    return analysis, outputs


def options_from_dict(values: dict[str, Any], server: AnalysisOptions | None = None
                      ) -> tuple[AnalysisOptions, OutputOptions]:
    """The option objects of a stored request; the analysis options a request cannot set are ``server``'s."""
    analysis, outputs = to_options(ScanOptions(**values))
    return (with_server_options(analysis, server) if server is not None else analysis), outputs


def with_server_options(request: AnalysisOptions, server: AnalysisOptions) -> AnalysisOptions:
    """``server``'s analysis options (runtime, ONNX model, batch size, window) with a request's own fields."""
    return dataclasses.replace(server, selection=request.selection,
                               **{name: getattr(request, name) for name in REQUEST_FIELDS[AnalysisOptions]})
