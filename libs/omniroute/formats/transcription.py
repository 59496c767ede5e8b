"""Speech to text: Deepgram's and AssemblyAI's answers → the gateway's answer
`{"text", "task": "transcribe", "language", "duration"}` (OpenAI's verbose shape, trimmed).
Pure, no I/O."""

from __future__ import annotations

from typing import Any

from omniroute.formats.errors import FormatError

Json = dict[str, Any]
AUDIO_TYPES = {"mp3": "audio/mpeg", "mpga": "audio/mpeg", "mpeg": "audio/mpeg", "wav": "audio/wav",
               "m4a": "audio/mp4", "mp4": "audio/mp4", "flac": "audio/flac", "ogg": "audio/ogg",
               "oga": "audio/ogg", "webm": "audio/webm"}


def audio_type(filename: str, declared: str = "") -> str:
    """The audio MIME type from the file name; unknown extensions are refused (a provider would
    answer with an opaque decoding error)."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension in AUDIO_TYPES:
        return AUDIO_TYPES[extension]
    if declared.startswith("audio/") and declared.split("/", 1)[1] in {"mpeg", "wav", "x-wav", "mp4",
                                                                       "flac", "ogg", "webm"}:
        return declared
    raise FormatError(f"Unsupported audio file {filename!r}: send mp3, wav, m4a, flac, ogg or webm.",
                      param="file")


def answer(text: str, language: str | None, duration: float | None) -> Json:
    return {"text": text, "task": "transcribe", "language": language or "",
            "duration": round(float(duration), 3) if duration is not None else None}


def from_openai(raw: Json, language: str | None) -> Json:
    """Whisper's `json` or `verbose_json` answer."""
    return answer(str(raw.get("text") or ""), raw.get("language") or language, raw.get("duration"))


def deepgram_query(model: str, language: str | None) -> dict[str, str]:
    query = {"model": model, "smart_format": "true"}
    if language:
        query["language"] = language
    else:
        query["detect_language"] = "true"
    return query


def from_deepgram(raw: Json, language: str | None) -> Json:
    """`{"metadata": {"duration"}, "results": {"channels": [{"alternatives": [{"transcript"}],
    "detected_language"}]}}`."""
    try:
        channel = raw["results"]["channels"][0]
        text = channel["alternatives"][0]["transcript"]
    except (KeyError, IndexError, TypeError) as exc:
        raise FormatError("the Deepgram answer has no transcript", status=502) from exc
    detected = channel.get("detected_language") if isinstance(channel, dict) else None
    return answer(str(text), detected or language, (raw.get("metadata") or {}).get("duration"))


def assemblyai_submit(audio_url: str, model: str, language: str | None) -> Json:
    body: Json = {"audio_url": audio_url, "speech_model": model}
    if language:
        body["language_code"] = language
    else:
        body["language_detection"] = True
    return body


def from_assemblyai(raw: Json) -> Json:
    """A finished transcript: `{"status": "completed", "text", "language_code", "audio_duration"}`."""
    return answer(str(raw.get("text") or ""), raw.get("language_code"), raw.get("audio_duration"))
