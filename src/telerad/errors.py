"""The error tree of telerad, translated once at each edge.

::

    TeleradError                 code, http_status, dimse_status
    ├── InvalidInput             bad input from outside: nothing was changed
    │   ├── InvalidDicom         not DICOM, truncated, or missing a required UID
    │   ├── UidMismatch          the command's SOP Instance UID is not the dataset's
    │   ├── TooLarge             an upload above the configured limit
    │   ├── InvalidQuery         a QIDO-RS / API query that cannot be understood
    │   └── MultipartError       a body that is not the multipart message it announced
    ├── NotAcceptable            no representation the request accepts can be made (406)
    │   └── UndecodablePixelData stored pixel data no installed decoder can decode
    ├── UnsupportedMediaType     a body of a media type the resource does not take (415)
    ├── NotAuthenticated         no or wrong credentials
    ├── Forbidden                authenticated, but outside the actor's scope
    ├── NotFound                 no such object (or not visible to the actor)
    ├── Conflict                 a unique fact would be contradicted
    │   └── InstanceConflict     same SOP Instance UID, different bytes: first copy kept
    ├── UnknownSender            a calling AE title that belongs to no site
    └── StorageFailure           the blob store or the index could not make data durable

Each class carries a stable ``code`` (for API clients and logs), the HTTP status of the JSON
API and DICOMweb edges, and the DIMSE status of the DICOM edge (PS3.4 Annex B.2.3 for
C-STORE: ``A7xx`` out of resources, ``A9xx`` data set does not match SOP class, ``Cxxx``
cannot understand; PS3.7 Annex C for the general ones). Messages never carry patient data.
"""

from __future__ import annotations


class TeleradError(Exception):
    """Root of every error telerad raises on purpose."""

    code = "telerad_error"
    http_status = 500
    dimse_status = 0xC000  # Failure: cannot understand (PS3.4 B.2.3)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(TeleradError):
    """Bad input from outside; nothing was changed."""

    code = "invalid_input"
    http_status = 400
    dimse_status = 0xC000


class InvalidDicom(InvalidInput):
    """Not DICOM, truncated, or missing a UID every instance must have."""

    code = "invalid_dicom"
    dimse_status = 0xC210  # Failure: cannot understand (dataset could not be parsed)


class UidMismatch(InvalidInput):
    """The SOP Instance or Class UID of the command differs from the dataset's."""

    code = "uid_mismatch"
    http_status = 409
    dimse_status = 0xA900  # Error: data set does not match SOP class


class TooLarge(InvalidInput):
    """Above the configured size limit."""

    code = "too_large"
    http_status = 413
    dimse_status = 0xA700  # Refused: out of resources


class InvalidQuery(InvalidInput):
    """A query parameter that cannot be understood."""

    code = "invalid_query"


class MultipartError(InvalidInput):
    """A body that is not the multipart message its Content-Type announced."""

    code = "invalid_multipart"


class NotAcceptable(TeleradError):
    """No representation the request accepts can be produced (HTTP 406, PS3.18 §8.7.1)."""

    code = "not_acceptable"
    http_status = 406


class UndecodablePixelData(NotAcceptable):
    """Stored pixel data that none of the installed decoders can decode (e.g. 12-bit JPEG
    Extended without GDCM): it can still be sent as stored, not decoded or rendered."""

    code = "undecodable_pixel_data"


class UnsupportedMediaType(TeleradError):
    """A request body of a media type this resource does not take (HTTP 415, PS3.18 §10.5)."""

    code = "unsupported_media_type"
    http_status = 415


class NotAuthenticated(TeleradError):
    """No credentials, or credentials that match nobody."""

    code = "not_authenticated"
    http_status = 401


class Forbidden(TeleradError):
    """The actor is known but the object is outside their scope."""

    code = "forbidden"
    http_status = 403


class NotFound(TeleradError):
    """No such object, or none the actor may see."""

    code = "not_found"
    http_status = 404


class Conflict(TeleradError):
    """The request contradicts a unique fact already recorded."""

    code = "conflict"
    http_status = 409


class InstanceConflict(Conflict):
    """Same SOP Instance UID, different bytes: the first copy is kept, the conflict recorded."""

    code = "instance_conflict"
    # PS3.7 C.4: 0111H Duplicate SOP Instance — the nearest standard meaning.
    dimse_status = 0x0111


class UnknownSender(TeleradError):
    """A calling AE title that belongs to no site (refused at association, PS3.8 §7.1.1.9)."""

    code = "unknown_sender"
    http_status = 403


class StorageFailure(TeleradError):
    """The blob store or the index could not make the data durable; the sender may retry."""

    code = "storage_failure"
    http_status = 503
    dimse_status = 0xA700  # Refused: out of resources
