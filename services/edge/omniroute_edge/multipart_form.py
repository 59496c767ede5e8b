"""multipart/form-data for the transcription upload, parsed with the standard library's MIME
parser (one upload route does not justify another dependency). The body is read with a size
limit first, so the parser never sees more than the limit."""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass, field

from omniroute.formats import FormatError


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)  # name → (filename, type, data)


def parse(content_type: str, body: bytes) -> Form:
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in content_type:
        raise FormatError("Send the audio as multipart/form-data with a 'file' and a 'model' field.")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise FormatError("The multipart body could not be read.")
    form = Form()
    for part in message.iter_parts():  # type: ignore[attr-defined]
        disposition = part.get("content-disposition", "")
        if not disposition:
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            form.files[name] = (filename, part.get_content_type(), payload)
        else:
            form.fields[name] = payload.decode("utf-8", errors="replace")
    return form
