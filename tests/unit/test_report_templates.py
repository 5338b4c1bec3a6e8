"""Report templates as data: the built-in JSON files, the strict JSON reader and its inverse,
the rules (choice of template, normal content, problems at signing, text), and the import of
IHE MRRT HTML templates (samples in tests/data/mrrt, written after published ones)."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telerad.errors import InvalidInput
from telerad.reporting.templates import (
    MAX_VALUE_LENGTH,
    Field,
    FieldKind,
    InvalidTemplate,
    Section,
    Template,
    builtin_templates,
    choose_template,
    from_mrrt,
    load_template,
    normal_content,
    parse_number,
    problems,
    render_sections,
    render_text,
    template_json,
)

MRRT = Path(__file__).parent.parent / "data" / "mrrt"
BUILTIN_CODES = {"ct_head", "ct_stroke", "ct_ctpa", "ct_abdo_pelvis", "ct_trauma", "ct_paed_head",
                 "mr_brain", "mr_spine", "generic_ct", "generic_mr"}
BUILTINS = {t.code: t for t in builtin_templates()}


def _files() -> list[tuple[str, dict[str, Any]]]:
    folder = resources.files("telerad.reporting").joinpath("template_files")
    return sorted((e.name, json.loads(e.read_text(encoding="utf-8")))
                  for e in folder.iterdir() if e.name.endswith(".json"))


def _template(*fields: Field) -> Template:
    return Template(code="t", version=1, title="Test", modality="CT", protocols=(),
                    sections=(Section(id="s", title="S", fields=fields),))


NUMBER = Field(id="shift", label="Déviation", kind=FieldKind.NUMBER, unit="mm", minimum=0,
               maximum=30)
CHOICE = Field(id="side", label="Côté", kind=FieldKind.CHOICE, options=("droit", "gauche"))
REQUIRED = Field(id="conclusion", label="Conclusion", kind=FieldKind.TEXT, multiline=True,
                 required=True)


# -- built-ins --------------------------------------------------------------------------------


def test_every_builtin_is_shipped_once_with_version_1():
    assert set(BUILTINS) == BUILTIN_CODES
    assert len(builtin_templates()) == len(BUILTIN_CODES)
    assert all(t.version == 1 and t.language == "fr" for t in builtin_templates())
    assert [name for name, _ in _files()] == sorted(f"{code}.json" for code in BUILTIN_CODES)


@pytest.mark.parametrize(("name", "data"), _files(), ids=[name for name, _ in _files()])
def test_builtin_files_are_canonical_and_round_trip(name: str, data: dict[str, Any]):
    template = load_template(data)
    assert name == f"{template.code}.json"
    assert template_json(template) == data  # the file is exactly what template_json writes
    assert load_template(json.loads(json.dumps(template_json(template)))) == template


@pytest.mark.parametrize("code", sorted(BUILTIN_CODES))
def test_builtin_shape_indication_conclusion_and_valid_normal_content(code: str):
    template = BUILTINS[code]
    indication = template.field("indication")
    assert (indication.kind, indication.required) == (FieldKind.TEXT, False)
    conclusion = template.field("conclusion")
    assert conclusion.required
    assert conclusion.normal
    assert template.sections[0].title == "Indication"
    assert template.sections[-1].title == "Conclusion"
    content = normal_content(template)
    assert problems(template, content, signing=True) == {}
    text = render_text(template, content)
    # a generic template leaves the technique to the radiologist; the others describe theirs
    first = "Technique" if template.protocols else "Résultats"
    assert text.startswith(f"{template.title}\n\n{first}\n")
    assert text.endswith("Conclusion\n" + conclusion.normal)
    assert problems(template, {}, signing=True) == {"conclusion": "required"}


def test_builtins_hold_the_scores_and_measures_of_their_exam():
    stroke = BUILTINS["ct_stroke"]
    aspects = stroke.field("aspects")
    assert (aspects.kind, aspects.minimum, aspects.maximum, aspects.normal) == (
        FieldKind.NUMBER, 0, 10, "10")
    assert "artère cérébrale moyenne, segment M1" in stroke.field("occlusion").options
    assert stroke.field("volume_coeur").unit == stroke.field("volume_penombre").unit == "mL"
    assert stroke.field("ratio_mismatch").kind is FieldKind.NUMBER
    qanadli = BUILTINS["ct_ctpa"].field("qanadli")
    assert (qanadli.minimum, qanadli.maximum) == (0, 40)
    assert BUILTINS["ct_ctpa"].field("rapport_vd_vg").kind is FieldKind.NUMBER
    assert BUILTINS["ct_head"].field("deviation_ligne_mediane").unit == "mm"
    assert BUILTINS["ct_trauma"].field("pneumothorax").normal == "absent"
    assert [s.id for s in BUILTINS["ct_trauma"].sections] == [
        "indication", "technique", "encephale", "rachis_cervical", "thorax", "abdomen_pelvis",
        "squelette", "conclusion"]
    assert BUILTINS["ct_head"].protocols == ("CT_HEAD",)
    assert BUILTINS["generic_mr"].protocols == ()
    assert all(f.kind is not FieldKind.CHOICE or f.options
               for t in builtin_templates() for f in t.fields())


# -- load_template ----------------------------------------------------------------------------


def test_load_template_names_every_problem_at_once():
    data = copy.deepcopy(template_json(BUILTINS["ct_head"]))
    data["title"] = " "
    data["extra"] = 1
    sections = data["sections"]
    fields = sections[2]["fields"]
    fields[0]["kind"] = "date"  # hemorragie
    fields[1]["id"] = "indication"  # duplicate of the indication field
    fields[3]["options"] = []  # effet_de_masse: a choice without options
    fields[4]["minimum"], fields[4]["maximum"] = 40, 0  # deviation_ligne_mediane
    fields[5]["normal"] = "énorme"  # ventricules: not among the options
    sections[1]["id"] = "indication"  # duplicate section id
    with pytest.raises(InvalidTemplate) as raised:
        load_template(data)
    found = raised.value.problems
    assert "template: title is empty" in found
    assert "template: unknown key 'extra'" in found
    assert "sections[2] (resultats).fields[0] (hemorragie): unknown kind 'date'" in found
    assert "template: duplicate field id 'indication'" in found
    assert "template: duplicate section id 'indication'" in found
    assert "sections[2] (resultats).fields[3] (effet_de_masse): a choice without options" in found
    assert "sections[2] (resultats).fields[4] (deviation_ligne_mediane): minimum 40 > maximum 0" \
        in found
    assert ("sections[2] (resultats).fields[5] (ventricules): the normal default 'énorme' is not "
            "among the options") in found
    assert len(found) == 8
    assert isinstance(raised.value, InvalidInput)
    assert raised.value.code == "invalid_template"
    assert "title is empty" in raised.value.message


@pytest.mark.parametrize(("change", "problem"), [
    ({"code": "CT Head"}, "template: code 'CT Head' is not a valid code"),
    ({"version": 0}, "template: version is not a whole number from 1"),
    ({"version": True}, "template: version is not a whole number from 1"),
    ({"modality": "ct"}, "template: modality 'ct' is not a valid modality"),
    ({"protocols": ["CT_HEAD", "CT_HEAD"]}, "template: protocols holds 'CT_HEAD' twice"),
    ({"sections": []}, "template: sections is not a non-empty list"),
    ({"title": None}, "template: title is missing"),
])
def test_load_template_top_level_problems(change: dict[str, object], problem: str):
    data = template_json(BUILTINS["generic_ct"]) | change
    if change.get("title", "") is None:
        del data["title"]
    with pytest.raises(InvalidTemplate) as raised:
        load_template(data)
    assert raised.value.problems == [problem]


@pytest.mark.parametrize(("field", "problem"), [
    ({"kind": "number", "normal": "dix"}, "the normal default 'dix' is not a number"),
    ({"kind": "number", "maximum": 3, "normal": "4"},
     "the normal default '4' is above the maximum"),
    ({"kind": "number", "minimum": "0"}, "minimum is not a number"),
    ({"kind": "text", "unit": "mm"}, "unit, minimum and maximum belong to number fields"),
    ({"kind": "text", "options": ["a"]}, "options belong to choice fields"),
    ({"kind": "choice", "options": ["a"], "multiline": True}, "multiline belongs to text fields"),
    ({"kind": "choice", "options": ["a", " b"]}, "options holds ' b', not a trimmed text"),
    ({"kind": "text", "required": "yes"}, "required is not true or false"),
    ({"kind": "text", "label": ""}, "label is empty"),
    ({"kind": "text", "normal": "x" * (MAX_VALUE_LENGTH + 1)},
     f"the normal default {'x' * 33 + '...'!r} is longer than {MAX_VALUE_LENGTH} characters"),
])
def test_load_template_field_problems(field: dict[str, object], problem: str):
    data = template_json(BUILTINS["generic_mr"])
    data["sections"][2]["fields"].append({"id": "extra", "label": "Extra"} | field)
    with pytest.raises(InvalidTemplate) as raised:
        load_template(data)
    assert raised.value.problems == [f"sections[2] (resultats).fields[1] (extra): {problem}"]


def test_load_template_refuses_what_is_not_an_object():
    with pytest.raises(InvalidTemplate):
        load_template([])  # type: ignore[arg-type]
    with pytest.raises(InvalidTemplate) as raised:
        load_template({"code": "x", "version": 1, "title": "X", "sections": ["not a section"]})
    assert raised.value.problems == ["sections[0]: not an object"]


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     lambda children: st.lists(children, max_size=4)
                     | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=20)


@settings(max_examples=150)
@given(data=st.dictionaries(st.sampled_from(["code", "version", "title", "modality", "sections",
                                             "protocols", "language", "x"]), _JSON))
def test_load_template_never_fails_other_than_invalid_template(data: dict[str, Any]):
    try:
        load_template(data)
    except InvalidTemplate as error:
        found = error.problems
    else:
        return
    assert found


# -- rules ------------------------------------------------------------------------------------


def test_choose_template_by_protocol_then_generic_by_modality():
    templates = builtin_templates()
    assert choose_template(templates, protocol_code="CT_STROKE", modality="CT").code == "ct_stroke"
    assert choose_template(templates, protocol_code="mr_spine", modality="MR").code == "mr_spine"
    assert choose_template(templates, protocol_code="CT_SINUS", modality="CT").code == "generic_ct"
    assert choose_template(templates, protocol_code=None, modality="mr").code == "generic_mr"
    assert choose_template(templates, protocol_code="", modality="MR").code == "generic_mr"
    assert choose_template(templates, protocol_code="US_ABDO", modality="US") is None
    assert choose_template([], protocol_code="CT_HEAD", modality="CT") is None
    newer = Template(code="ct_head_site", version=2, title="Scanner cérébral (site)",
                     modality="CT", protocols=("CT_HEAD",), sections=BUILTINS["ct_head"].sections)
    assert choose_template([*templates, newer], protocol_code="CT_HEAD", modality="CT") is newer
    older = Template(code="generic_ct", version=3, title="Scanner", modality="CT", protocols=(),
                     sections=BUILTINS["generic_ct"].sections)
    assert choose_template([older, *templates], protocol_code=None, modality="CT") is older


def test_template_field_lookup():
    template = BUILTINS["ct_ctpa"]
    assert template.field("qanadli").label.startswith("Index d'obstruction")
    assert [f.id for f in template.fields()][:2] == ["indication", "technique"]
    with pytest.raises(KeyError):
        template.field("nope")


def test_normal_content_holds_the_fields_that_have_a_default():
    template = _template(NUMBER, CHOICE, Field(id="n", label="N", kind=FieldKind.TEXT,
                                               normal="rien"))
    assert normal_content(template) == {"n": "rien"}
    content = normal_content(BUILTINS["ct_stroke"])
    assert content["aspects"] == "10"
    assert "indication" not in content  # the caller fills it from the request


@pytest.mark.parametrize(("field", "value", "code"), [
    (NUMBER, "douze", "not_a_number"),
    (NUMBER, "1e3", "not_a_number"),
    (NUMBER, "nan", "not_a_number"),
    (NUMBER, "-1", "below_minimum"),
    (NUMBER, "30,5", "above_maximum"),
    (CHOICE, "milieu", "not_an_option"),
    (CHOICE, "Droit", "not_an_option"),
    (REQUIRED, "x" * (MAX_VALUE_LENGTH + 1), "too_long"),
    (REQUIRED, " " * (MAX_VALUE_LENGTH + 1), "too_long"),
])
def test_problem_codes(field: Field, value: str, code: str):
    template = _template(field)
    assert problems(template, {field.id: value}, signing=False) == {field.id: code}


@pytest.mark.parametrize(("field", "value"), [
    (NUMBER, "12"), (NUMBER, " 2,5 "), (NUMBER, "0"), (NUMBER, "30."), (CHOICE, "gauche "),
    (REQUIRED, "x" * MAX_VALUE_LENGTH),
])
def test_valid_values(field: Field, value: str):
    assert problems(_template(field), {field.id: value}, signing=True) == {}


def test_required_only_when_signing_and_unknown_fields():
    template = _template(NUMBER, CHOICE, REQUIRED)
    assert problems(template, {}, signing=False) == {}
    assert problems(template, {"conclusion": " \n"}, signing=True) == {"conclusion": "required"}
    assert problems(template, {"side": ""}, signing=True) == {"conclusion": "required"}
    assert problems(template, {"conclusion": "RAS", "ghost": "x"}, signing=False) == {
        "ghost": "unknown_field"}


def test_parse_number():
    assert parse_number(" 3,5 ") == 3.5
    assert parse_number("-.5") == -0.5
    assert parse_number("1" * 400) is None  # overflows to infinity
    assert parse_number("1_000") is None
    assert parse_number("") is None


def test_render_sections_and_text():
    template = Template(
        code="t", version=1, title="Scanner cérébral sans injection", modality="CT",
        protocols=(), sections=(
            Section(id="a", title="Indication", fields=(
                Field(id="indication", label="Indication", kind=FieldKind.TEXT, multiline=True),)),
            Section(id="b", title="Résultats", fields=(
                NUMBER, CHOICE, Field(id="sinus", label="Sinus", kind=FieldKind.TEXT),
                Field(id="note", label="Note", kind=FieldKind.TEXT, multiline=True),
                Field(id="score", label="Score", kind=FieldKind.NUMBER))),
            Section(id="c", title="Vide", fields=(Field(id="v", label="V", kind=FieldKind.TEXT),)),
            Section(id="d", title="Conclusion", fields=(REQUIRED,))))
    content = {"indication": "Chute.\r\nSous AVK.", "shift": "4", "side": "gauche",
               "sinus": " normaux ", "note": "", "score": "7", "v": "  ",
               "conclusion": "Hématome sous-dural.", "ghost": "ignored"}
    assert render_sections(template, content) == [
        ("Indication", "Chute.\nSous AVK."),
        ("Résultats", "Déviation: 4 mm\nCôté: gauche\nSinus: normaux\nScore: 7"),
        ("Conclusion", "Hématome sous-dural."),
    ]
    assert render_text(template, content) == (
        "Scanner cérébral sans injection\n\nIndication\nChute.\nSous AVK.\n\nRésultats\n"
        "Déviation: 4 mm\nCôté: gauche\nSinus: normaux\nScore: 7\n\nConclusion\n"
        "Hématome sous-dural.")
    assert render_text(template, {}) == "Scanner cérébral sans injection"


def test_render_builtin_with_measures():
    template = BUILTINS["ct_stroke"]
    content = normal_content(template) | {
        "aspects": "7", "occlusion": "artère cérébrale moyenne, segment M1",
        "occlusion_cote": "gauche", "volume_coeur": "12", "volume_penombre": "85,5",
        "ratio_mismatch": "8,1"}
    assert problems(template, content, signing=True) == {}
    sections = dict(render_sections(template, content))
    assert "Score ASPECTS: 7" in sections["Parenchyme (sans injection)"].splitlines()
    assert "Occlusion artérielle: artère cérébrale moyenne, segment M1\nCôté de l'occlusion: " \
        "gauche" in sections["Angioscanner"]
    assert "Volume de pénombre (Tmax > 6 s moins le cœur): 85,5 mL" in sections["Perfusion"]


_IDS = st.sampled_from(sorted({f.id for t in builtin_templates() for f in t.fields()}))


@settings(max_examples=200)
@given(code=st.sampled_from(sorted(BUILTIN_CODES)),
       content=st.dictionaries(
           _IDS | st.text(max_size=12),
           st.text(max_size=40) | st.sampled_from(["10", "3,5", "-1", "absent"]), max_size=12),
       signing=st.booleans())
def test_arbitrary_content_never_crashes(code: str, content: dict[str, str], signing: bool):
    template = BUILTINS[code]
    found = problems(template, content, signing=signing)
    ids = {f.id for f in template.fields()}
    assert set(found) <= set(content) | ids
    assert all((key in ids) != (value == "unknown_field") for key, value in found.items())
    text = render_text(template, content)
    assert text.startswith(template.title)
    assert "\r" not in text


# -- MRRT import ------------------------------------------------------------------------------


def _mrrt(name: str, **options: Any) -> Template:
    return from_mrrt((MRRT / name).read_text(encoding="utf-8"), **options)


def test_mrrt_supplement_shaped_template():
    template = _mrrt("ct_pe_ihe.html")
    assert (template.code, template.version, template.title) == (
        "1.2.826.0.1.3680043.10.1234.7.2", 1, "CT Pulmonary Angiography")
    assert (template.modality, template.language, template.protocols) == ("CT", "en", ())
    assert [(s.id, s.title) for s in template.sections] == [
        ("clinicalInformation", "Clinical Information"),
        ("procedureInformation", "Procedure Information"),
        ("findings", "Findings"), ("impression", "Impression")]
    # the level2 "Right heart strain" section is folded into Findings, in document order
    assert [f.id for f in template.sections[2].fields] == ["quality", "pe", "rvlv", "septum",
                                                           "lungs"]
    assert template.field("indication") == Field(id="indication", label="Indication",
                                                 kind=FieldKind.TEXT, multiline=True)
    assert template.field("dlp") == Field(id="dlp", label="Dose length product",
                                          kind=FieldKind.NUMBER, unit="mGy.cm", minimum=0,
                                          maximum=5000)
    assert template.field("pe") == Field(id="pe", label="Pulmonary embolism",
                                         kind=FieldKind.CHOICE, required=True,
                                         options=("absent", "present"), normal="absent")
    assert not template.field("quality").required  # ALERT warns, only PROHIBIT forbids
    assert template.field("rvlv").normal == "0.9"
    assert template.field("impressionText").required  # data-field-completion-action PROHIBIT
    content = normal_content(template)
    assert problems(template, content, signing=True) == {}
    assert problems(template, {"pe": "maybe", "rvlv": "9"}, signing=True) == {
        "pe": "not_an_option", "rvlv": "above_maximum", "impressionText": "required"}
    assert render_text(template, content).endswith("Impression\nNo pulmonary embolism.")
    assert load_template(template_json(template)) == template


def test_mrrt_trex_export_shaped_template():
    template = _mrrt("trex_abdomen.html", modality="ct")
    assert (template.code, template.title, template.modality) == (
        "http_www.radreport.org_template_9999999", "CT Abdomen Pelvis", "CT")
    assert [s.title for s in template.sections] == [
        "Procedure Information", "Clinical Information", "Comparison", "Findings", "Impression"]
    technique = template.field("CHECKBOX_1562002262835")
    assert (technique.kind, technique.multiline, technique.required, technique.label) == (
        FieldKind.TEXT, True, True, "Technique")
    assert technique.normal == "CT of the abdomen and pelvis with intravenous contrast."
    assert "TEXT_reminder" not in {f.id for f in template.fields()}  # inside <mark>
    assert not any(f.id.endswith("_FreeText") for f in template.fields())
    indication = template.field("SELECTION_LIST_1476917486402")  # <input list>: free text
    assert (indication.kind, indication.normal) == (FieldKind.TEXT, "Abdominal pain.")
    assert template.field("comparisonsText").label == "Comparison"  # empty label: the section's
    lungs = template.field("SELECTION_LIST_1459554442176")
    assert lungs.options == ("Normal.", "See separate chest report.")  # the empty one dropped
    radio = template.field("RADIO_1562002262861")
    assert (radio.kind, radio.options, radio.normal, radio.label) == (
        FieldKind.CHOICE, ("yes", "no"), "yes", "Appendix visualised")
    diameter = template.field("NUMBER_1562002262867")
    assert (diameter.unit, diameter.minimum, diameter.maximum, diameter.normal) == (
        "mm", 0, 40, "")
    impression = template.field("impressionText")  # the older <input type="textarea">
    assert (impression.multiline, impression.required) == (True, True)
    assert problems(template, normal_content(template), signing=True) == {}


def test_mrrt_hand_written_shaped_template():
    template = _mrrt("drg_style_cct.html")
    assert (template.code, template.modality, template.language) == (
        "041807.2.2503141200", "CT", "de")  # modality from dcterms.subject "CT; NR;"
    assert [s.title for s in template.sections] == ["Klinische Angaben", "Befund", "Beurteilung"]
    first = template.sections[0].fields[0]  # a textarea without id: named after its section
    assert (first.id, first.label, first.normal) == ("klinische_angaben_1", "Klinische Angaben",
                                                     "Sturz, Antikoagulation")
    bleeding = template.field("blutung")
    assert (bleeding.kind, bleeding.normal) == (FieldKind.CHOICE, "keine")
    assert bleeding.options[0] == "-"
    fracture = template.field("fraktur")  # loose radio buttons grouped by name
    assert (fracture.label, fracture.options, fracture.normal) == ("Fraktur", ("nein", "ja"),
                                                                    "nein")
    assert [(f.id, f.label) for f in template.fields() if f.id.startswith("ventrikel")] == [
        ("ventrikel", "Ventrikelsystem"), ("ventrikel_2", "Ventrikelsystem (Verlauf)")]
    assert "Infarktfrühzeichen" in template.field("beurteilung").normal  # &uuml; decoded
    assert template.field("beurteilung").required
    text = render_text(template, normal_content(template))
    assert "Mittellinienverlagerung: 0 mm\nFraktur: nein" in text


def test_mrrt_modality_argument_wins():
    assert _mrrt("drg_style_cct.html", modality="MR").modality == "MR"
    assert _mrrt("trex_abdomen.html").modality == ""
    assert _mrrt("ct_pe_ihe.html", version=3).version == 3


def test_mrrt_problems_are_all_named():
    with pytest.raises(InvalidTemplate) as raised:
        _mrrt("broken.html")
    assert raised.value.problems == [
        "the document has no <title> nor dcterms.title",
        "section 'Findings': the select 'side' has no options",
        "section 'Findings': the radio group 'grade' has no options",
        "sections[0] (findings).fields[0] (size): minimum 10 > maximum 2",
    ]
    assert isinstance(raised.value, InvalidInput)


@pytest.mark.parametrize(("html", "problem"), [
    ("<html><head><title>T</title></head><body><p>No sections.</p></body></html>",
     "the document has no <section>"),
    ("<title>T</title><section><header>H</header><p>Static text.</p></section>",
     "no section has a field to fill in"),
    ("", "the document has no <title> nor dcterms.title"),
    ("<title>T</title><![foo[<section>",
     "the document cannot be read as HTML: unknown status keyword 'foo' in marked section"),
])
def test_mrrt_without_fields(html: str, problem: str):
    with pytest.raises(InvalidTemplate) as raised:
        from_mrrt(html)
    assert problem in raised.value.problems


def test_mrrt_title_from_meta_and_code_from_title():
    template = from_mrrt('<meta name="dcterms.title" content="IRM Genou — Ménisques">'
                         '<section><header>Résultats</header>'
                         '<label>Ménisque interne <input type="text" value="normal"></label>'
                         '</section>')
    assert (template.code, template.title) == ("irm_genou_menisques", "IRM Genou — Ménisques")
    assert template.field("resultats_1").label == "Ménisque interne"  # the enclosing <label>


def test_mrrt_radio_options_labelled_inside_their_container():
    template = from_mrrt(
        '<title>T</title><section><header>Findings</header><label for="g">Grade:</label>'
        '<span id="g" data-field-type="RADIO"><input type="radio" id="g1" name="g">'
        '<label for="g1">low</label><input type="radio" id="g2" name="g" checked>'
        '<label for="g2">high</label></span></section>')
    assert template.field("g") == Field(id="g", label="Grade", kind=FieldKind.CHOICE,
                                        options=("low", "high"), normal="high")


@settings(max_examples=150)
@given(html=st.lists(st.sampled_from([
    *"<>/=\"' !-[]&;#x", "<section>", "</section>", "<header>", "<select>", "<option>",
    "<input ", "<textarea>", "type=radio", "type=number", "min=", "max=", "value=", "checked ",
    "data-field-type=RADIO ", "data-field-type=CHECKBOX ", "<title>", "<mark>", "<![CDATA[",
    "<!--", "<label for=a>", "id=a ", "name=a ", "<script>", "<?x", "<![if", "<![foo[", "&#x",
    "3,5"]),
    max_size=40).map("".join))
def test_mrrt_never_fails_other_than_invalid_template(html: str):
    try:
        template = from_mrrt(html)
    except InvalidTemplate as error:
        found = error.problems
    else:
        assert load_template(template_json(template)) == template
        return
    assert found
