"""Import of IHE MRRT report templates (IHE RAD TF Suppl. MRRT, §8.1.3: a template is an
XHTML5 document) into a :class:`~telerad.reporting.templates.Template`.

What is read, tolerantly (published templates are hand-written or exported by editors such as
RSNA's T-Rex, and are rarely strict):

==========================  ==================================================================
``<head>``                  ``<title>`` (else ``dcterms.title``) -> title; ``dcterms.identifier``
                            -> code (else the title); ``dcterms.language``; ``dcterms.subject``
                            may name the modality (e.g. ``CT; NR``). The ``<script
                            type="text/xml">`` coded content (RadLex, LOINC) is not kept.
``<section>``               one section per top-level ``<section>``: title from its ``<header>``
                            (else ``data-section-name``); nested ``level2`` sections are folded
                            into their top-level one; sections without a field are left out.
``<input>`` TEXT, DATE...   a one-line text; ``value`` is the normal default
``<input>`` NUMBER          a number: ``min``, ``max``, ``value``; a short text right after the
                            input (``mm``) is taken as its unit
``<textarea>``              a paragraph (also the older ``<input type="textarea">``)
``<select>`` SELECTONE      a choice: the options' ``value`` (else text), ``selected`` default;
                            SELECTMULTIPLE (``multiple``) becomes a paragraph of the selected
``RADIO`` / ``CHECKBOX``    a container (``data-field-type``) or inputs sharing a ``name``: radio
                            buttons are a choice, checkboxes a paragraph of the checked values
``<label for=...>``         a field's label (else its title or name, else the section's title)
``required`` or             a required field; MRRT's completion action PROHIBIT forbids
``data-field-completion-    finalising a report while the field is empty
action="PROHIBIT"``
==========================  ==================================================================

``<mark>`` (text not meant for the report), ``<script>`` and ``<style>`` are skipped. Field ids
are the HTML ids, made valid and unique. The HTML is never rendered or executed here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from html.parser import HTMLParser

from telerad.reporting.templates import InvalidTemplate, Template, load_template, parse_number

#: Elements without an end tag (HTML "void elements").
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                   "param", "source", "track", "wbr"})
#: Content that is not part of the report, or not text.
_SKIPPED = frozenset({"script", "style", "mark", "template", "datalist", "head", "title"})
_CONTROLS = frozenset({"input", "select", "textarea", "option"})
_NOT_FIELDS = frozenset({"hidden", "button", "submit", "reset", "image", "file", "password"})
#: Modality words in dcterms.subject, as DICOM Modality (PS3.3 C.7.3.1.1.1).
_MODALITIES = {"CT": "CT", "MR": "MR", "MRT": "MR", "MRI": "MR", "IRM": "MR", "US": "US",
               "CR": "CR", "DX": "DX", "MG": "MG", "NM": "NM", "PET": "PT", "PT": "PT",
               "XA": "XA", "RF": "RF"}


@dataclass(eq=False)
class _Node:
    tag: str
    attrs: dict[str, str]
    parent: _Node | None = None
    children: list[_Node | str] = field(default_factory=list)

    def get(self, name: str) -> str:
        return self.attrs.get(name, "").strip()

    def field_type(self) -> str:
        return self.get("data-field-type").upper()


class _TreeBuilder(HTMLParser):
    """A forgiving element tree: void elements never open, stray end tags are ignored."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("#document", {})
        self._open = [self.root]

    def _add(self, tag: str, attrs: list[tuple[str, str | None]]) -> _Node:
        values: dict[str, str] = {}
        for name, value in attrs:
            values.setdefault(name, value or "")  # the first of repeated attributes wins
        if tag == "option" and self._open[-1].tag == "option":
            self._open.pop()  # an option ends where the next begins
        node = _Node(tag, values, self._open[-1])
        self._open[-1].children.append(node)
        return node

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = self._add(tag, attrs)
        if tag not in _VOID:
            self._open.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._add(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, 0, -1):
            if self._open[depth].tag == tag:
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._open[-1].children.append(data)


def _walk(node: _Node, prune: frozenset[str] = frozenset(), stop: frozenset[str] = frozenset(),
          *, into_groups: bool = True) -> list[_Node]:
    """Descendants in document order (no recursion: templates may nest deeply); elements in
    ``prune`` are left out with their content, those in ``stop`` (and RADIO / CHECKBOX
    containers unless ``into_groups``) are kept but not entered."""
    found: list[_Node] = []
    pending = [c for c in reversed(node.children) if isinstance(c, _Node)]
    while pending:
        current = pending.pop()
        if current.tag in prune:
            continue
        found.append(current)
        if current.tag not in stop and (into_groups or not _is_group(current)):
            pending += [c for c in reversed(current.children) if isinstance(c, _Node)]
    return found


def _text(node: _Node) -> str:
    """The node's text, whitespace collapsed, without the text of controls and skipped parts."""
    parts: list[str] = []
    pending: list[_Node | str] = list(reversed(node.children))
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            parts.append(current)
        elif current.tag not in _SKIPPED and current.tag not in _CONTROLS:
            pending += reversed(current.children)
    return " ".join("".join(parts).split())


def _label_text(text: str) -> str:
    return text.strip().rstrip(":").strip()


def _is_group(node: _Node) -> bool:
    return node.tag != "input" and node.field_type() in ("RADIO", "CHECKBOX")


def _slug(text: str, *, lower: bool) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    plain = plain.lower() if lower else plain
    return re.sub(r"[^A-Za-z0-9.-]+", "_", plain).strip("_.-")


@dataclass
class _Raw:
    """A field found in the document, before ids and labels are settled."""

    node: _Node
    kind: str  # text, choice, number
    multiline: bool = False
    options: list[str] = field(default_factory=list)
    normal: str = ""
    members: list[_Node] = field(default_factory=list)  # radio buttons / checkboxes
    unit: str = ""


class _Reader:
    def __init__(self, root: _Node) -> None:
        self.root = root
        self.problems: list[str] = []
        self.labels: dict[str, list[str]] = {}
        self.seen: dict[str, int] = {}
        for label in _walk(root, prune=frozenset({"script", "style"})):
            if label.tag == "label" and label.get("for"):
                self.labels.setdefault(label.get("for"), []).append(_label_text(_text(label)))

    def option_text(self, box: _Node) -> str:
        """A radio button's or checkbox's value: its value, else its label or following text."""
        if "value" in box.attrs and box.get("value") not in ("", "on"):
            return box.get("value")
        labels = self.labels.get(box.get("id"), []) if box.get("id") else []
        if labels and labels[-1]:
            return labels[-1]
        return _label_text(_following_text(box))

    def read_select(self, select: _Node, where: str) -> _Raw | None:
        options: list[str] = []
        chosen: list[str] = []
        for option in (n for n in _walk(select) if n.tag == "option"):
            value = option.get("value") if "value" in option.attrs else _text(option)
            if value and value not in options:
                options.append(value)
            if value and "selected" in option.attrs:
                chosen.append(value)
        if not options:
            self.problems.append(f"{where}: the select {_name(select)} has no options")
            return None
        if "multiple" in select.attrs or select.field_type() == "SELECTMULTIPLE":
            return _Raw(select, "text", multiline=True, normal="\n".join(chosen))
        default = chosen[0] if chosen else select.get("value")
        return _Raw(select, "choice", options=options,
                    normal=default if default in options else "")

    def read_group(self, node: _Node, boxes: list[_Node], where: str) -> _Raw | None:
        values = [self.option_text(b) for b in boxes]
        checked = [v for v, b in zip(values, boxes, strict=True) if "checked" in b.attrs and v]
        if all(b.get("type").lower() == "radio" for b in boxes):
            options = list(dict.fromkeys(v for v in values if v))
            if not options:
                self.problems.append(f"{where}: the radio group {_name(node)} has no options")
                return None
            return _Raw(node, "choice", options=options, normal=checked[0] if checked else "",
                        members=boxes)
        return _Raw(node, "text", multiline=True, normal="\n".join(checked), members=boxes)

    def read_input(self, node: _Node) -> _Raw | None:
        kind = node.get("type").lower() or "text"
        data_type = node.field_type()
        if kind in _NOT_FIELDS or node.get("id").endswith("_FreeText"):
            return None  # T-Rex pairs a free-text input with an option: part of the option
        if data_type == "NUMBER" or kind in ("number", "range"):
            value = node.get("value")
            return _Raw(node, "number", normal=value if parse_number(value) is not None else "",
                        unit=_unit(_following_text(node)))
        return _Raw(node, "text", multiline=kind == "textarea" or data_type == "TEXTAREA",
                    normal=node.attrs.get("value", "").strip())

    def fields_of(self, section: _Node, where: str) -> list[_Raw]:
        """The fields of a top-level section, nested sections included, in document order."""
        found: list[_Raw | None] = []
        loose: dict[str, _Raw] = {}
        for node in _walk(section, prune=_SKIPPED, stop=frozenset({"select", "textarea"}),
                          into_groups=False):
            if _is_group(node):
                boxes = [n for n in _walk(node) if n.tag == "input"
                         and n.get("type").lower() in ("radio", "checkbox")]
                if boxes or node.field_type() == "RADIO":
                    found.append(self.read_group(node, boxes, where))
            elif node.tag == "select":
                found.append(self.read_select(node, where))
            elif node.tag == "textarea":
                found.append(_Raw(node, "text", multiline=True, normal=_raw_text(node).strip()))
            elif node.tag == "input" and node.get("type").lower() in ("radio", "checkbox"):
                name = node.get("name") or node.get("id")
                if name and name in loose:
                    loose[name].members.append(node)
                else:  # a box outside any container: grouped with those of the same name
                    found.append(raw := _Raw(node, "loose", members=[node]))
                    loose[name] = raw
            elif node.tag == "input":
                found.append(self.read_input(node))
        read = [self.read_group(r.node, r.members, where) if r and r.kind == "loose" else r
                for r in found]
        return [r for r in read if r is not None]

    def label(self, raw: _Raw, section_title: str, alone: bool) -> str:
        """The field's label: a ``<label for>``, an enclosing ``<label>``, its title or name,
        the section's title when it is the section's only field, else its id."""
        candidates: list[str] = []
        if raw.members and not _is_group(raw.node):
            # Boxes grouped by name: the group's label is a label of a box that is not the
            # box's own option text (a lone box is labelled by its own text).
            own = {self.option_text(b) for b in raw.members}
            labels = [t for b in raw.members for t in self.labels.get(b.get("id"), [])]
            candidates += [t for t in labels if t not in own] if len(raw.members) > 1 else labels
        elif raw.node.get("id"):
            # A repeated id (it happens): the n-th field with it takes the n-th label for it.
            labels = self.labels.get(raw.node.get("id"), [])
            seen = self.seen.get(raw.node.get("id"), 0)
            self.seen[raw.node.get("id")] = seen + 1
            candidates += labels[seen:seen + 1] + labels
        ancestor = raw.node.parent
        while ancestor is not None and ancestor.tag != "label":
            ancestor = ancestor.parent
        if ancestor is not None:
            candidates.append(_label_text(_text(ancestor)))
        candidates += [raw.node.get("title"), "" if raw.members else raw.node.get("name"),
                       section_title if alone else ""]
        return next((c for c in candidates if c), raw.node.get("id") or section_title)


def _following_text(node: _Node) -> str:
    """The text right after a node, up to the next element (``<input> mm``)."""
    if node.parent is None:
        return ""
    siblings = node.parent.children
    after = siblings[siblings.index(node) + 1:]
    words: list[str] = []
    for item in after:
        if not isinstance(item, str):
            break
        words.append(item)
    return " ".join("".join(words).split())


def _unit(text: str) -> str:
    """The unit written right after a number input (``mm``, ``mL``, ``%``), if it is one: a
    short word that is not the label of what follows (``Width:``) nor a ``12 x 15`` sign."""
    if len(text) > 12 or " " in text or text.endswith(":") or text.lower() in ("x", "\u00d7"):
        return ""
    return text


def _raw_text(node: _Node) -> str:
    return "".join(c for c in node.children if isinstance(c, str))


def _name(node: _Node) -> str:
    return repr(node.get("id") or node.get("name") or node.tag)


def _unique(candidate: str, taken: set[str], fallback: str) -> str:
    """A valid id (templates._ID) from an HTML id, not yet taken."""
    base = (_slug(candidate, lower=False) or fallback)[:56]
    if not re.match(r"[A-Za-z_]", base):
        base = f"f_{base}"
    chosen, n = base, 1
    while chosen in taken:
        n += 1
        chosen = f"{base}_{n}"
    taken.add(chosen)
    return chosen


def _head(root: _Node) -> tuple[str, dict[str, str]]:
    """The title (``<title>``, else dcterms.title) and the ``<meta name>`` values, lower-cased
    names, first of each."""
    meta: dict[str, str] = {}
    for node in _walk(root):
        if node.tag == "meta" and node.get("name"):
            meta.setdefault(node.get("name").lower(), node.get("content"))
    title = next((" ".join(_raw_text(n).split()) for n in _walk(root, prune=frozenset({"body"}))
                  if n.tag == "title"), "")
    return title or meta.get("dcterms.title", ""), meta


def _field_data(reader: _Reader, raw: _Raw, *, field_id: str, section_title: str,
                alone: bool) -> dict[str, object]:
    """A field as templates.load_template reads it."""
    node = raw.node
    data: dict[str, object] = {"id": field_id, "label": reader.label(raw, section_title, alone),
                               "kind": raw.kind}
    if "required" in node.attrs or node.get("data-field-completion-action").upper() == "PROHIBIT":
        data["required"] = True
    if raw.multiline:
        data["multiline"] = True
    if raw.kind == "choice":
        data["options"] = raw.options
    for key, attr in (("minimum", "min"), ("maximum", "max")):
        if raw.kind == "number" and (bound := parse_number(node.get(attr))) is not None:
            data[key] = bound
    if raw.unit:
        data["unit"] = raw.unit
    if raw.normal:
        data["normal"] = raw.normal
    if node.get("title") and node.get("title") != data["label"]:
        data["help"] = node.get("title")
    return data


def _sections(reader: _Reader, body: _Node) -> list[dict[str, object]]:
    """The sections with a field to fill in, as templates.load_template reads them."""
    tops = [n for n in _walk(body, prune=_SKIPPED, stop=frozenset({"section"}))
            if n.tag == "section"]
    if not tops:
        reader.problems.append("the document has no <section>")
    section_ids: set[str] = set()
    field_ids: set[str] = set()
    sections: list[dict[str, object]] = []
    for number, top in enumerate(tops, start=1):
        header = next((n for n in _walk(top, prune=_SKIPPED) if n.tag == "header"), None)
        title = (_text(header) if header else "") or top.get("data-section-name") \
            or top.get("id") or f"Section {number}"
        raws = reader.fields_of(top, f"section {title!r}")
        if not raws:
            continue  # static text only (e.g. a fixed sentence): nothing to fill in
        section_id = _unique(top.get("id") or _slug(title, lower=True), section_ids,
                             f"section_{number}")
        fields: list[dict[str, object]] = []
        for index, raw in enumerate(raws, start=1):
            node = raw.node
            loose = bool(raw.members) and not _is_group(node)  # boxes grouped by their name
            html_id = (node.get("name") or node.get("id")) if loose \
                else (node.get("id") or node.get("name"))
            fields.append(_field_data(
                reader, raw, field_id=_unique(html_id, field_ids, f"{section_id}_{index}"),
                section_title=title, alone=len(raws) == 1))
        sections.append({"id": section_id, "title": title, "fields": fields})
    if tops and not sections:
        reader.problems.append("no section has a field to fill in")
    return sections


def from_mrrt(html: str, *, modality: str = "", version: int = 1) -> Template:
    """The template an MRRT HTML document describes, with no protocols: a site links it to its
    protocols afterwards. ``modality`` wins over the one ``dcterms.subject`` may name; the
    ``version`` is telerad's (MRRT dates its templates but does not number them).
    :class:`~telerad.reporting.templates.InvalidTemplate` (an InvalidInput) names what is
    wrong: no title, no section with a field, a select or radio group without options..."""
    builder = _TreeBuilder()
    try:
        builder.feed(html)
        builder.close()
    except AssertionError as error:
        # CPython's _markupbase asserts on some marked sections (``<![foo[``): bad input.
        raise InvalidTemplate([f"the document cannot be read as HTML: {error}"]) from error
    reader = _Reader(builder.root)
    title, meta = _head(builder.root)
    if not title:
        reader.problems.append("the document has no <title> nor dcterms.title")
    code = _slug(meta.get("dcterms.identifier", ""), lower=True)[:64].strip("_.-") \
        or _slug(title, lower=True)[:64].strip("_.-") or "mrrt_template"
    if not modality.strip():
        words = re.split(r"[\s;,/]+", meta.get("dcterms.subject", "").upper())
        modality = next((_MODALITIES[w] for w in words if w in _MODALITIES), "")
    language = meta.get("dcterms.language", "").lower().replace("_", "-")
    language = language if re.fullmatch(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*", language) else ""
    body = next((n for n in _walk(builder.root) if n.tag == "body"), builder.root)
    sections = _sections(reader, body)
    problems = list(reader.problems)
    if sections:
        try:
            template = load_template({
                "code": code, "version": version, "title": title,
                "modality": modality.strip().upper(), "protocols": [], "language": language,
                "sections": sections})
        except InvalidTemplate as error:
            # A missing title was named above, in the document's own terms.
            problems += [p for p in error.problems if p != "template: title is empty"]
        else:
            if not problems:
                return template
    raise InvalidTemplate(problems)
