"""Tolerant reading of HL7 v2 messages in ER7, the pipe-and-hat encoding (HL7 v2.5 ch. 2).

:func:`parse` returns a :class:`Message`; values are read by position the way the standard
names them (``PID-5.2`` is ``message.field("PID", 5, component=2)``), 1-based, with the
escape sequences of §2.7 decoded. Reading is tolerant, because real RIS messages rarely are
strict:

- segments end with CR as §2.5.1 says, but also LF or CR LF; blank lines are skipped and a
  line that does not start with a segment name continues the previous segment (a free
  text split by a sender that used newlines inside a field);
- a missing field, component or repetition reads as ``""``;
- an unknown or unterminated escape sequence is kept as written.

Refused, with :class:`InvalidHl7`: an empty message, one that does not begin with MSH, and
encoding characters that cannot work (§2.5.4: four distinct non-alphanumeric characters
different from the field separator).

Writing: :func:`escape` and :meth:`Encoding.join` build values for messages telerad sends
(ACK, ORU); they always use the default ``|^~\\&``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from telerad.errors import InvalidInput


class InvalidHl7(InvalidInput):
    """Not an HL7 v2 message that can be read (ACK AR, HL7 table 0357 error 100 or 102)."""

    code = "invalid_hl7"
    #: HL7 table 0357 code for the ERR segment of the ACK.
    hl7_error = "100"


_SEGMENT = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_LINES = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Encoding:
    """The delimiters of a message: MSH-1 and MSH-2 (§2.5.4)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @classmethod
    def from_msh(cls, field: str, characters: str) -> Encoding:
        # MSH-2 has 4 characters (5 in v2.7, the truncation character, which we ignore).
        chars = characters[:4]
        if len(chars) < 4 or len(characters) > 5:
            raise InvalidHl7("MSH-2 must hold the four encoding characters, such as ^~\\&")
        every = field + chars
        if len(set(every)) != 5 or any(c.isalnum() or c.isspace() for c in every):
            raise InvalidHl7("the field separator and encoding characters must be five "
                             "distinct characters, neither letters, digits nor spaces")
        return cls(field, chars[0], chars[1], chars[2], chars[3])

    @property
    def msh2(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent

    def unescape(self, value: str) -> str:
        """``value`` with the escape sequences of §2.7.4 decoded."""
        e = self.escape
        if e not in value:
            return value
        out: list[str] = []
        i = 0
        while i < len(value):
            c = value[i]
            end = value.find(e, i + 1) if c == e else -1
            if end < 0:
                out.append(c)
                i += 1
                continue
            out.append(self._sequence(value[i + 1 : end], value[i : end + 1]))
            i = end + 1
        return "".join(out)

    def _sequence(self, body: str, written: str) -> str:
        simple = {"F": self.field, "S": self.component, "T": self.subcomponent,
                  "R": self.repetition, "E": self.escape, ".br": "\n"}
        if body in simple:
            return simple[body]
        if body in ("H", "N"):  # highlighting on/off: no meaning in plain text
            return ""
        if body[:1] == "X" and len(body) % 2 == 1 and re.fullmatch(r"[0-9A-Fa-f]*", body[1:]):
            raw = bytes.fromhex(body[1:])
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                return raw.decode("latin-1")
        if body[:1] in ("C", "M", "Z"):  # character set switches, local escapes: dropped
            return ""
        return written

    def join(self, *components: str) -> str:
        """Components (already escaped) joined into one field, trailing empties trimmed."""
        return self.component.join(components).rstrip(self.component)


#: What telerad writes with.
DEFAULT_ENCODING = Encoding()


def escape(value: str, encoding: Encoding = DEFAULT_ENCODING) -> str:
    """``value`` made safe to place in a field (§2.7.4); newlines become ``\\.br\\``, other
    control characters (but tab) hexadecimal data, ``\\Xhh\\`` (§2.7.5): a raw 0x0B or 0x1C
    would end an MLLP frame, and a reader trims a trailing 0x1C as framing left over."""
    e = encoding
    swaps = {e.escape: "E", e.field: "F", e.component: "S", e.subcomponent: "T",
             e.repetition: "R"}
    out = []
    for c in value.replace("\r\n", "\n").replace("\r", "\n"):
        if c in swaps:
            out.append(f"{e.escape}{swaps[c]}{e.escape}")
        elif c == "\n":
            out.append(f"{e.escape}.br{e.escape}")
        elif (c < " " and c != "\t") or c == "\x7f":
            out.append(f"{e.escape}X{ord(c):02X}{e.escape}")
        else:
            out.append(c)
    return "".join(out)


@dataclass(frozen=True)
class Segment:
    """One segment; ``fields[n]`` is field ``n`` as written (``fields[0]`` is the name;
    for MSH, ``fields[1]`` is the field separator so that the numbers match the standard)."""

    fields: tuple[str, ...]
    encoding: Encoding

    @property
    def name(self) -> str:
        return self.fields[0]

    def raw(self, n: int) -> str:
        """Field ``n`` as written, repetitions and escapes included."""
        return self.fields[n] if 0 < n < len(self.fields) else ""

    def repetitions(self, n: int) -> list[str]:
        """Field ``n``'s repetitions as written (one empty string for an empty field)."""
        if self.name == "MSH" and n in (1, 2):
            return [self.raw(n)]
        return self.raw(n).split(self.encoding.repetition)

    def components(self, n: int, *, repetition: int = 1) -> list[str]:
        """The decoded components of one repetition of field ``n`` (subcomponents kept
        joined with the subcomponent separator)."""
        reps = self.repetitions(n)
        if not 0 < repetition <= len(reps):
            return [""]
        if self.name == "MSH" and n in (1, 2):
            return [reps[0]]
        return [self.encoding.unescape(c) for c in reps[repetition - 1].split(
            self.encoding.component)]

    def value(self, n: int, component: int = 1, *, repetition: int = 1,
              subcomponent: int = 1) -> str:
        """One decoded value: ``PID-5.1`` is ``value(5, 1)``; whitespace around it trimmed."""
        reps = self.repetitions(n)
        if not 0 < repetition <= len(reps):
            return ""
        if self.name == "MSH" and n in (1, 2):
            return reps[0] if component == 1 else ""
        comps = reps[repetition - 1].split(self.encoding.component)
        if not 0 < component <= len(comps):
            return ""
        subs = comps[component - 1].split(self.encoding.subcomponent)
        if not 0 < subcomponent <= len(subs):
            return ""
        return self.encoding.unescape(subs[subcomponent - 1]).strip()

    def transcoded(self, n: int, encoding: Encoding = DEFAULT_ENCODING) -> str:
        """Field ``n`` rewritten with ``encoding``'s delimiters (to copy a received value
        into a message telerad writes)."""
        if self.name == "MSH" and n in (1, 2):
            return ""
        own = self.encoding
        return encoding.repetition.join(
            encoding.component.join(
                encoding.subcomponent.join(escape(own.unescape(s), encoding)
                                           for s in comp.split(own.subcomponent))
                for comp in rep.split(own.component))
            for rep in self.repetitions(n))


@dataclass(frozen=True)
class Message:
    """A parsed message: its segments in order and its encoding characters."""

    all_segments: tuple[Segment, ...]
    encoding: Encoding

    @property
    def msh(self) -> Segment:
        return self.all_segments[0]

    def segments(self, name: str) -> list[Segment]:
        return [s for s in self.all_segments if s.name == name]

    def segment(self, name: str) -> Segment | None:
        """The first segment called ``name``, if any."""
        return next((s for s in self.all_segments if s.name == name), None)

    def field(self, segment: str | Segment, n: int, component: int = 1, *,
              repetition: int = 1, subcomponent: int = 1) -> str:
        """A decoded value of the first such segment; ``""`` when absent."""
        seg = self.segment(segment) if isinstance(segment, str) else segment
        if seg is None:
            return ""
        return seg.value(n, component, repetition=repetition, subcomponent=subcomponent)

    @property
    def message_type(self) -> str:
        """MSH-9.1, e.g. ``ORM``."""
        return self.field(self.msh, 9, 1).upper()

    @property
    def trigger_event(self) -> str:
        """MSH-9.2, e.g. ``O01``."""
        return self.field(self.msh, 9, 2).upper()

    @property
    def control_id(self) -> str:
        """MSH-10, echoed in MSA-2 of the ACK."""
        return self.field(self.msh, 10)

    @property
    def version(self) -> str:
        """MSH-12.1, e.g. ``2.5``."""
        return self.field(self.msh, 12)


def parse(text: str | bytes) -> Message:
    """Read one ER7 message; bytes are decoded as UTF-8, else Latin-1 (MSH-18 is rarely
    right, and both are common in French RIS)."""
    if isinstance(text, bytes):
        raw = text
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    text = text.lstrip("\ufeff \t\r\n\x0b").rstrip("\x1c\r\n")
    if not text:
        raise InvalidHl7("the message is empty")
    if not text.startswith("MSH"):
        raise InvalidHl7("an HL7 v2 message must begin with an MSH segment")
    if len(text) < 8:
        raise InvalidHl7("the MSH segment is cut short before its encoding characters")
    lines = [line for line in _LINES.split(text) if line.strip()]
    field_separator = text[3]
    if field_separator.isalnum() or field_separator.isspace():
        raise InvalidHl7("MSH-1, the field separator, must not be a letter, digit or space")
    msh2 = lines[0][4:].split(field_separator)[0]
    encoding = Encoding.from_msh(field_separator, msh2)
    rows: list[list[str]] = []
    for line in lines:
        name = line[:3]
        if _SEGMENT.match(name) and (len(line) == 3 or line[3] == field_separator):
            rows.append(line.split(field_separator))
        else:
            # A line break inside a field: continue the previous segment's last field.
            rows[-1][-1] += "\n" + line
    rows[0].insert(1, field_separator)  # MSH-1 is the separator itself
    return Message(tuple(Segment(tuple(row), encoding) for row in rows), encoding)


def render(segments: Sequence[Sequence[str]], encoding: Encoding = DEFAULT_ENCODING) -> str:
    """Segments (name then fields, already escaped; for MSH the fields from MSH-3 on) as
    ER7 text, each ending with CR (§2.5.1); trailing empty fields trimmed."""
    out = []
    for name, *fields in segments:
        head = f"{name}{encoding.field}{encoding.msh2}" if name == "MSH" else name
        body = encoding.field.join(fields).rstrip(encoding.field)
        out.append(f"{head}{encoding.field}{body}" if body else head)
    return "\r".join(out) + "\r"
