"""SAMPLE module classifier: labels an appeal's text; its CPU cost grows with the text's length.

    POST /classify  {"text": "..."} -> {"label", "scores", "tokens", "device"}
    GET  /health, /version, /metrics (see khronika_sample.py)

Each token is hashed CLASSIFIER_ROUNDS times (default 2000) to stand in for a model's work, so the
capacity planner sees cost proportional to text length. CLASSIFIER_USE_GPU=true asks for a GPU: with
/dev/nvidia0 present the answer says "gpu" (the work stays on the CPU; it is a stand-in), without one
the classifier falls back to the CPU instead of failing, as a GPU-optional module would.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from http import HTTPStatus
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "common"))  # running from the source tree

from khronika_sample import HttpError, Response, SampleHandler, serve

MODULE = "classifier"
DEFAULT_PORT = 8081
MAX_TEXT_CHARS = 100_000
LABELS = {
    "complaint": ("complaint", "broken", "late", "refuse", "bad", "never", "problem", "wrong"),
    "request": ("please", "request", "need", "issue", "provide", "permit", "certificate", "apply"),
    "gratitude": ("thank", "thanks", "grateful", "appreciate", "great", "helpful"),
    "question": ("how", "when", "why", "what", "where", "which", "?"),
}
_TOKEN_RE = re.compile(r"\w+|\?")


def device() -> str:
    wants_gpu = os.environ.get("CLASSIFIER_USE_GPU", "false").lower() in {"1", "true", "yes"}
    if wants_gpu and Path("/dev/nvidia0").exists():
        return "gpu"
    return "cpu (gpu requested, none found)" if wants_gpu else "cpu"


def classify_text(text: str, rounds: int) -> dict[str, object]:
    tokens = _TOKEN_RE.findall(text.lower())
    scores = dict.fromkeys(LABELS, 1.0)
    for token in tokens:
        digest = token.encode()
        for _ in range(rounds):  # the stand-in for inference: linear in the number of tokens
            digest = hashlib.sha256(digest).digest()
        for label, words in LABELS.items():
            if any(token.startswith(word) for word in words):
                scores[label] += 1.0 + digest[0] / 1024
    total = sum(scores.values())
    normalised = {label: round(score / total, 4) for label, score in scores.items()}
    return {"label": max(normalised, key=normalised.__getitem__), "scores": normalised, "tokens": len(tokens)}


def classify(_match: re.Match[str], handler: SampleHandler) -> Response:
    body = handler.read_json()
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise HttpError(HTTPStatus.BAD_REQUEST, 'send a JSON object with a non-empty "text"')
    if len(text) > MAX_TEXT_CHARS:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"text longer than {MAX_TEXT_CHARS} characters")
    result = classify_text(text, int(os.environ.get("CLASSIFIER_ROUNDS") or 2000))
    return HTTPStatus.OK, {**result, "device": device()}


ROUTES = [("POST", re.compile(r"/classify"), "/classify", classify)]

if __name__ == "__main__":
    serve(MODULE, ROUTES, DEFAULT_PORT)
