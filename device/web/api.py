"""The JSON API under /api/v1/: info, faces, mood and history for the page; analyze and feedback by POST."""

from __future__ import annotations

import json
import logging
import math
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from device.config import parse_bool
from device.const import ANALYZE_MAX_BODY, MAX_JSON_BODY
from device.web.responder import Responder

logger = logging.getLogger(__name__)

HISTORY_MAX_H = 24.0 * 365


class ApiRoutes(Responder):
    """The endpoints of the JSON API; the router in ``http.py`` picks one by path."""

    def _info(self) -> dict[str, Any]:
        app = self.server_app
        info: dict[str, Any] = {"feedback": app.feedback is not None, "token": bool(app.config.token)}
        if app.dashboard is not None:
            info["labels"] = list(app.dashboard.labels)
            info["mood_window_s"] = app.dashboard.mood.window_s
        if app.analyzer is not None:
            info["model"] = app.analyzer.model
        return info

    def _history(self, history: Callable[[float], dict[str, Any]], query: str) -> None:
        params = urllib.parse.parse_qs(query)
        try:
            hours = float(params.get("hours", ["24"])[0])
        except ValueError:
            hours = math.nan
        if not 0.1 <= hours <= HISTORY_MAX_H:  # also refuses nan and inf
            self._error(HTTPStatus.BAD_REQUEST, f"hours: expected a number from 0.1 to {HISTORY_MAX_H:g}")
            return
        self._send_json(HTTPStatus.OK, history(hours))

    def _analyze(self, params: dict[str, list[str]]) -> None:
        app = self.server_app
        if app.analyzer is None:
            self._refuse(HTTPStatus.NOT_FOUND, "the analyser is off")
            return
        length = self._body_length(ANALYZE_MAX_BODY)
        if length is None:  # refused before admission: it holds no place
            return
        with app.analyzer.admit() as admitted:
            if not admitted:  # answered before the body is read, so a burst costs no memory
                self._refuse(
                    HTTPStatus.TOO_MANY_REQUESTS,
                    "busy analysing other images; retry shortly",
                    {"Retry-After": "1"},
                )
                return
            self._analyze_admitted(params, length)

    def _analyze_admitted(self, params: dict[str, list[str]], length: int) -> None:
        from device.web.analyze import AnalyzeError

        app = self.server_app
        assert app.analyzer is not None
        body = self._read_exactly(length)
        if body is None:
            return
        word = params.get("annotate", ["false"])[0]
        annotate = parse_bool(word)
        if annotate is None:  # "maybe" was taken for false: the caller got JSON where it asked for a picture
            self._error(HTTPStatus.BAD_REQUEST, f"annotate: expected true or false, got {word!r}")
            return
        try:
            result = app.analyzer.submit(self.headers.get("Content-Type", ""), body, annotate)
        except AnalyzeError as err:
            self._error(err.status, err.message)
            return
        except Exception:
            logger.exception("http: analyze failed")
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "the analysis failed; see the daemon's log")
            return
        if annotate and result.jpeg is not None:
            self._send(HTTPStatus.OK, "image/jpeg", result.jpeg)
            return
        self._send_json(
            HTTPStatus.OK,
            {
                "model": app.analyzer.model,
                "width": result.width_px,
                "height": result.height_px,
                "faces": result.faces,
            },
        )

    def _feedback(self) -> None:
        from device.web.analyze import AnalyzeError

        app = self.server_app
        if app.feedback is None:  # whatever the body (a form was told 415 about its type)
            self._refuse(HTTPStatus.NOT_FOUND, "feedback is off; set feedback.enabled = true to turn it on")
            return
        if not self._json_content_type():
            return
        body = self._read_body(MAX_JSON_BODY)
        if body is None:
            return
        try:
            request = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the interpreter's limit
            request = None
        if not isinstance(request, dict):
            self._error(HTTPStatus.BAD_REQUEST, 'expected JSON {"face_id": 3, "label": "sad"}')
            return
        face_id, label = request.get("face_id"), request.get("label")
        if type(face_id) is not int:  # not a bool, a float (25.7, 1e400) or a string
            self._error(HTTPStatus.BAD_REQUEST, "face_id: expected a JSON integer, as in the faces' ids")
            return
        if not isinstance(label, str):
            self._error(HTTPStatus.BAD_REQUEST, "label: expected a string, one of the model's labels")
            return
        try:
            path = app.feedback.save(face_id, label)
        except AnalyzeError as err:
            self._error(err.status, err.message)
            return
        self._send_json(
            HTTPStatus.CREATED, {"saved": f"{label}/{path.name}", "face_id": face_id, "label": label}
        )
