"""Official documents of a СОП case as HTML and PDF (Jinja2 + WeasyPrint).

The forms follow the appendices of the Порядок (004, see docs/domain.md); the resolutions follow §5.2–5.3 and
§6.1–6.5, the removal act §7.1 and art. 77 of the Family Code.

    render_html(kind, context) -> str      # the HTML handed to WeasyPrint (autoescaped)
    render_pdf(kind, context) -> bytes     # A4 PDF with the DejaVu Serif subset embedded
    DOCUMENT_KINDS                         # kind -> Russian title

``context`` is a plain dict of plain values (str, int, date/datetime or ISO "YYYY-MM-DD" strings, lists,
dicts). Dates are printed as ДД.ММ.ГГГГ. A missing optional key, ``None`` or an empty string prints as a blank
line for handwriting ("________________"), an empty table gets blank rows. A missing required key raises
``ValueError`` that names the kind and the key; an unknown code (danger level, criterion, ground, result,
decision) raises ``ValueError`` too. Code-valued fields take the codes of :mod:`sop.documents.labels`.

Keys (* = required; "a|b" = either a or b is required; "→ x" = falls back to x when missing)
--------------------------------------------------------------------------------------------------------
Common to every kind:
    commission*        name of the municipal commission, e.g. "Комиссия по делам несовершеннолетних и защите
                       их прав городского округа «Город Йошкар-Ола»" (optional for intake_journal, removal_act)
    municipality*      municipality name, e.g. "городской округ «Город Йошкар-Ола»"
    generated_at       the document's date
    place              place of issue for resolutions and the act, e.g. "г. Йошкар-Ола"
    procedure          the "к Порядку …" text under "ПРИЛОЖЕНИЕ № N" (default labels.PROCEDURE_REFERENCE)

``case`` (used by every kind except intake_journal and databank):
    number             case / registration number
    family_name        family surname, e.g. "Ивановы"
    subject            "minor" | "family" | "minor_and_family" (default "minor_and_family")
    minors             [{full_name, birth_date, relation ("дочь", "сын"), occupation (school, class),
                         additional_education}]
    parents            [{full_name, birth_date, relation ("мать", "отец", "опекун"), occupation}]
                       (a missing relation is guessed from the patronymic: мать/отец, дочь/сын)
    other_members      [{full_name, birth_date, relation, occupation}]   other members of the household
    address_registered, address_actual
    danger_level       "low" | "medium" | "high" | "critical"
    criteria           ["c1".."c8"]  family criteria (labels.FAMILY_CRITERIA)
    detected_at        date the signs were found;  detected_by  who found them
    registered_at      date of registration (recognition)
    housing            {type: labels.HOUSING_TYPES code, area (m²), amenities: labels.HOUSING_AMENITIES code,
                        sanitary: labels.SANITARY_STATES code, living_conditions (text), other (text)}
    income             {salary, pension, benefits, farm, alimony, stipend, other, per_capita}  (roubles)
    support_measures   [str]; an empty list prints "Меры социальной поддержки не оформлены" as marked
    curator            {full_name, position, agency, phone}

intake_journal (Appendix 1, landscape):
    journal*           {agency*, period_from, period_to, responsible {position, full_name},
                        entries*: [{number, received (date), source, parents (str | [str | person]),
                                    children (str | [str | person]), address, problem, result}]}
conclusion (Appendix 2):
    case*              minors*
    conclusion         {danger_level (→ case.danger_level; one of them required), criteria (→ case.criteria),
                        text (the conclusion), date (→ generated_at), agency, head {position, full_name}}
registration_card (Appendix 3):
    case*              number*, minors*
    card               {family_categories: [labels.FAMILY_CATEGORIES codes],
                        parent_type: labels.PARENT_CHARACTERISTICS code,
                        situations: ["c1".."c8"] (→ case.criteria),
                        registers: {labels.AGENCY_REGISTERS code: {date, protocol, reason, agency ("other")}},
                        attachment: {labels.ATTACHMENTS code: text}, head {position, full_name}, date}
programme (Appendix 4):
    case*              minors*
    programme*         {activities*: [{number, title, content, agency, responsible, term, status
                                       (labels.ACTIVITY_STATUSES code or text), done_at}],
                        goal, approved_protocol, approved_date, detected_at (→ case.detected_at),
                        registered_at (→ case.registered_at), consilium_conclusion,
                        plan: [{situation, tasks, planned, term}],
                        potential: {initial|main|final: labels.REHABILITATION_POTENTIAL code},
                        reactions: {initial|main|final: labels.FAMILY_REACTIONS code},
                        patronage_changes: [{kind: labels.PATRONAGE_TYPES code, reason, date}],
                        consilia: [{date, activities, conclusions}],
                        evaluation: {result: labels.CLOSURE_RESULTS code, reasons, proposals},
                        completion: [labels.COMPLETION_POSITIVE / COMPLETION_NEGATIVE codes],
                        curator (→ case.curator)}
proposals (Appendix 5):
    case*              minors*
    proposals*         {agency*, date, plan: [as programme.plan], activities: [as programme.activities],
                        head {position, full_name}, author {position, full_name, phone}}
databank (Appendix 8, landscape):
    databank*          {rows*: [{municipality (→ municipality), minor_full_name, minor_birth_date,
                                 parents (str | [str | {full_name, occupation}]), address_registered,
                                 address_actual, minor_occupation, registration_reason, registered_at,
                                 removed_at, removal_reason (labels.CLOSURE_GROUNDS code or text)}],
                        as_of (date), secretary {position, full_name}}
resolution_recognition, resolution_approval, resolution_closure (постановление):
    case*              minors*
    resolution*        {number*, date*, meeting_date (→ date), protocol, present (a count, a list of names or
                        text), votes_for, votes_against,
                        votes_abstained, text (the "установила" part), chair {full_name},
                        secretary {full_name}, decision (see below), ...}
      every kind:      protocol (the meeting's number), meeting_place; the votes line is printed only when
                       votes_for is given (votes_against and votes_abstained then default to 0)
      recognition:     decision "recognise" (default) | "refuse"; subject (→ case.subject); ipr_from, ipr_to,
                       ipr_months; curator (→ case.curator; named in the accusative);
                       working_group [{agency, full_name, position}];
                       programme_due (date); proposals_due (date); recommendations (text, for "refuse");
                       uses ``conclusion.date`` when given
      approval:        decision "approve" (default) | "rework"; curator (→ case.curator); send_days (default 5);
                       send_working_days (bool); send_due (date); dispatcher (who sends the programme, in the
                       dative, e.g. "Ответственному секретарю комиссии"; default the curator);
                       dispatcher_is_curator (bool: the curator's name follows);
                       agencies [str] (→ the agencies of programme.activities); review_date; remarks;
                       rework_due; uses ``programme`` {approved_protocol, activities} when given
      closure:         grounds* (labels.CLOSURE_GROUNDS code or list of codes); grounds_text; result
                       (labels.CLOSURE_RESULTS code); result_reasons; decision "close" (default) | "continue";
                       initiator (who proposed or petitioned); agencies [str]; ipr_to (for "continue")
removal_act (акт об отобрании ребенка, §7.1, ст. 77 СК РФ):
    removal_act*       {date* (date or datetime of the act), number, time ("ЧЧ:ММ"; → the datetime's time),
                        guardianship_body,
                        inspection_act {number, date}, circumstances (text),
                        children (→ case.minors; one of them required) [{full_name, birth_date}],
                        removed_from (→ case.parents) [{full_name, birth_date, relation}],
                        from_only_parent (bool; False drops the §7.1(5) clause),
                        placement {kind: labels.REMOVAL_PLACEMENTS code, name, address},
                        participants [{position, full_name}], head {position, full_name},
                        authority (issuing body line; default "Администрация" + municipality)}
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, Environment, FileSystemLoader, Undefined
from markupsafe import Markup

from . import labels
from .names import inflect_name, plural

__all__ = ["BLANK", "DOCUMENT_KINDS", "REQUIRED_KEYS", "format_date", "pdf_from_html", "render_contents_pdf",
           "render_html", "render_pdf"]

TEMPLATES_DIR = Path(__file__).with_name("templates")

# A blank line for handwriting, printed in place of every missing value.
BLANK = Markup("________________")

DOCUMENT_KINDS: dict[str, str] = {
    "intake_journal": (
        "Журнал первичного учета поступающей информации о семьях и несовершеннолетних, находящихся "
        "в социально опасном положении"
    ),
    "conclusion": (
        "Заключение об установлении обстоятельств, подтверждающих отнесение несовершеннолетнего и (или) "
        "семьи к категории, находящихся в социально опасном положении"
    ),
    "registration_card": "Учетная карта семьи и несовершеннолетнего, находящихся в социально опасном положении",
    "programme": (
        "Индивидуальная программа социальной реабилитации семьи и несовершеннолетнего, находящихся "
        "в социально опасном положении"
    ),
    "proposals": (
        "Предложения в индивидуальную программу социальной реабилитации семьи и несовершеннолетнего, "
        "находящихся в социально опасном положении"
    ),
    "databank": "Списки несовершеннолетних и (или) семей, находящихся в социально опасном положении",
    "resolution_recognition": (
        "Постановление о признании несовершеннолетнего и (или) семьи находящимися в социально опасном "
        "положении и об организации индивидуальной профилактической работы"
    ),
    "resolution_approval": (
        "Постановление об утверждении индивидуальной программы социальной реабилитации семьи и несовершеннолетнего"
    ),
    "resolution_closure": "Постановление о прекращении индивидуальной профилактической работы и снятии с учета",
    "removal_act": "Акт об отобрании ребенка (статья 77 Семейного кодекса Российской Федерации)",
    "materials": "Сведения и материалы органа по запросу комиссии",
}

_COMMON = ("commission", "municipality")
_CASE = ("case", "case.minors")
_RESOLUTION = (*_COMMON, *_CASE, "resolution", "resolution.number", "resolution.date")

# Required keys per kind: dotted paths; "a|b" means that one of the alternatives must be present.
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "intake_journal": ("municipality", "journal", "journal.agency", "journal.entries"),
    "conclusion": (*_COMMON, *_CASE, "conclusion.danger_level|case.danger_level"),
    "registration_card": (*_COMMON, *_CASE, "case.number"),
    "programme": (*_COMMON, *_CASE, "programme", "programme.activities"),
    "proposals": (*_COMMON, *_CASE, "proposals", "proposals.agency"),
    "databank": (*_COMMON, "databank", "databank.rows"),
    "resolution_recognition": _RESOLUTION,
    "resolution_approval": _RESOLUTION,
    "resolution_closure": (*_RESOLUTION, "resolution.grounds"),
    "removal_act": ("municipality", "removal_act", "removal_act.date", "removal_act.children|case.minors"),
    "materials": (*_COMMON, *_CASE, "materials", "materials.agency", "materials.answer"),
}

# Code-valued keys checked before rendering: path -> (allowed codes, whether the value is a list).
_CODED_KEYS: dict[str, tuple[Mapping[str, Any], bool]] = {
    "case.danger_level": (labels.DANGER_LEVELS, False),
    "conclusion.danger_level": (labels.DANGER_LEVELS, False),
    "case.criteria": (labels.FAMILY_CRITERIA, True),
    "conclusion.criteria": (labels.FAMILY_CRITERIA, True),
    "card.situations": (labels.FAMILY_CRITERIA, True),
    "case.subject": (labels.SUBJECTS, False),
    "resolution.subject": (labels.SUBJECTS, False),
    "programme.evaluation.result": (labels.CLOSURE_RESULTS, False),
}
_CODED_BY_KIND: dict[str, dict[str, tuple[Mapping[str, Any], bool]]] = {
    "resolution_recognition": {"resolution.decision": (labels.RECOGNITION_DECISIONS, False)},
    "resolution_approval": {"resolution.decision": (labels.APPROVAL_DECISIONS, False)},
    "resolution_closure": {
        "resolution.decision": (labels.CLOSURE_DECISIONS, False),
        "resolution.grounds": (labels.CLOSURE_GROUNDS, True),
        "resolution.result": (labels.CLOSURE_RESULTS, False),
    },
}

_MISSING = object()


def _lookup(context: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or _MISSING when a step is absent, None or an empty string."""
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
        if value is None or (isinstance(value, str) and not value.strip()):
            return _MISSING
    return value


def _validate(kind: str, context: Mapping[str, Any]) -> None:
    if kind not in DOCUMENT_KINDS:
        raise ValueError(f"unknown document kind {kind!r}; expected one of: {', '.join(DOCUMENT_KINDS)}")
    if not isinstance(context, Mapping):
        raise ValueError(f"{kind}: context must be a dict, not {type(context).__name__}")
    for key in REQUIRED_KEYS[kind]:
        if all(_lookup(context, alt) is _MISSING for alt in key.split("|")):
            raise ValueError(f"{kind}: missing required context key {key!r}")
    for path, (codes, is_list) in {**_CODED_KEYS, **_CODED_BY_KIND.get(kind, {})}.items():
        value = _lookup(context, path)
        if value is _MISSING:
            continue
        values = [value] if isinstance(value, str) or not is_list else value
        if not isinstance(values, Iterable):
            raise ValueError(f"{kind}: context key {path!r} must be a list of codes")
        for item in values:
            if item not in codes:
                raise ValueError(
                    f"{kind}: unknown value {item!r} of context key {path!r}; expected one of: {', '.join(codes)}"
                )


# --- template helpers --------------------------------------------------------------------------------------


class _Blank(ChainableUndefined):
    """Undefined that prints as a blank line and behaves as an empty, chainable value."""

    __slots__ = ()

    def __str__(self) -> str:
        return str(BLANK)

    def __html__(self) -> str:
        return str(BLANK)


def _is_empty(value: Any) -> bool:
    return value is None or isinstance(value, Undefined) or (isinstance(value, str) and not value.strip())


def _finalize(value: Any) -> Any:
    # Markup comes from the templates themselves (macros, filters): an empty one is meant to stay empty.
    if isinstance(value, Markup):
        return value
    return BLANK if _is_empty(value) else value


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        for parse in (dt.date.fromisoformat, lambda s: dt.datetime.fromisoformat(s).date()):
            try:
                return parse(text)
            except ValueError:
                pass
        try:
            return dt.datetime.strptime(text, "%d.%m.%Y").date()
        except ValueError:
            return None
    return None


def format_date(value: Any) -> Any:
    """ДД.ММ.ГГГГ for a date, a datetime or an ISO string; other text as it is; a blank line when missing."""
    if _is_empty(value):
        return BLANK
    parsed = _as_date(value)
    return parsed.strftime("%d.%m.%Y") if parsed else str(value)


def format_time(value: Any) -> Any:
    """ЧЧ:ММ of a datetime, a time, an ISO datetime string or an "ЧЧ:ММ" string; a blank line otherwise."""
    if isinstance(value, (dt.datetime, dt.time)):
        return value.strftime("%H:%M")
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", text):
            return text.rsplit(":", 1)[0] if text.count(":") == 2 else text
        if len(text) > 10:  # a date alone has no time
            try:
                return dt.datetime.fromisoformat(text).strftime("%H:%M")
            except ValueError:
                pass
    return BLANK


def _label(value: Any, mapping: Mapping[str, Any]) -> Any:
    """The label of a code (of each code of a list, joined by "; "); a value that is not a code as it is."""
    if _is_empty(value):
        return value
    if isinstance(value, (list, tuple)):
        labelled = [str(_label(v, mapping)) for v in value if not _is_empty(v)]
        return "; ".join(labelled) if labelled else None
    if isinstance(value, str) and value in mapping:
        found = mapping[value]
        return found[0] if isinstance(found, tuple) else found
    return value


def _cell(value: Any) -> Any:
    """A table cell: empty (room for handwriting) rather than a blank line when the value is missing."""
    return Markup("&nbsp;") if _is_empty(value) else value


def _money(value: Any) -> Any:
    """An amount in roubles with grouped thousands ("12 500", "1 234,50"); an empty cell when missing."""
    if _is_empty(value):
        return Markup("&nbsp;")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    return text.replace(",", "\u00a0").replace(".", ",")


def _paragraphs(value: Any) -> list[str]:
    """The non-empty lines of a multi-line text."""
    if _is_empty(value):
        return []
    return [line.strip() for line in str(value).splitlines() if line.strip()]


def _upfirst(value: Any) -> Any:
    """The text with its first letter in upper case, the rest as it is."""
    text = str(value)
    return text[:1].upper() + text[1:]


def _number(value: Any) -> Any:
    """A number with a decimal comma ("42,5")."""
    if isinstance(value, float):
        return f"{value:g}".replace(".", ",")
    return value


def _person(value: Any) -> Any:
    """'Full Name, ДД.ММ.ГГГГ г.р.' for a person dict; a string as it is."""
    if isinstance(value, Mapping):
        name = value.get("full_name")
        born = value.get("birth_date")
        name = BLANK if _is_empty(name) else str(name)
        return f"{name}, {format_date(born)} г.р." if not _is_empty(born) else name
    return BLANK if _is_empty(value) else str(value)


def _people(values: Any, sep: str = "; ") -> Any:
    """A list of people (dicts or strings) on one line; a string as it is."""
    if _is_empty(values):
        return BLANK
    if isinstance(values, (str, Mapping)):
        return _person(values)
    items = [str(_person(v)) for v in values]
    return sep.join(items) if items else BLANK


_FEMALE_ENDINGS = ("вна", "чна", "кызы", "гызы")
_MALE_ENDINGS = ("вич", "ич", "оглы", "улы")


def _sex(person: Mapping[str, Any]) -> str | None:
    """ "f" or "m" guessed from the patronymic (the last word of a Russian full name), else None."""
    words = str(person.get("full_name") or "").lower().split()
    if len(words) < 3:
        return None
    if words[-1].endswith(_FEMALE_ENDINGS):
        return "f"
    if words[-1].endswith(_MALE_ENDINGS):
        return "m"
    return None


def _relation(person: Any, role: str) -> Any:
    """The person's relation; when not given, "мать"/"отец" (role "parent") or "дочь"/"сын" (role "minor")
    guessed from the patronymic, or None."""
    if not isinstance(person, Mapping):
        return None
    if not _is_empty(person.get("relation")):
        return person["relation"]
    words = {"parent": {"f": "мать", "m": "отец"}, "minor": {"f": "дочь", "m": "сын"}}.get(role, {})
    return words.get(_sex(person) or "")


def _family_members(case: Any) -> list[tuple[Any, Any]]:
    """(person, relation) for the parents, the minors and the other members of a case, in that order."""
    if not isinstance(case, Mapping):
        return []
    return [
        (person, _relation(person, role))
        for key, role in (("parents", "parent"), ("minors", "minor"), ("other_members", "other"))
        for person in _as_list(case.get(key))
    ]


def _with_relation(people: Any, *relations: str) -> list[Mapping[str, Any]]:
    """The parents whose relation (given, or guessed from the patronymic) is one of the given words."""
    wanted = {r.lower() for r in relations}
    return [
        p for p in _as_list(people) if isinstance(p, Mapping) and str(_relation(p, "parent") or "").lower() in wanted
    ]


def _by_person(people: Any, attribute: str) -> str:
    """'Name: value; Name: value' for the people that have the attribute (e.g. the minors' schools)."""
    parts = [
        f"{p.get('full_name') or BLANK}: {p[attribute]}"
        for p in _as_list(people)
        if isinstance(p, Mapping) and not _is_empty(p.get(attribute))
    ]
    return "; ".join(parts)


def _unique(values: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if not _is_empty(value) and value not in seen:
            seen.append(value)
    return seen


def _as_list(value: Any) -> list[Any]:
    if _is_empty(value):
        return []
    if isinstance(value, (str, Mapping)):
        return [value]
    return list(value)


def _inflect(value: Any, case: str) -> Any:
    """A person's full name in a grammatical case (see :mod:`sop.documents.names`); other text as it is."""
    if _is_empty(value):
        return value
    return inflect_name(str(value), case)


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=_Blank,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        d=format_date,
        t=format_time,
        label=_label,
        cell=_cell,
        money=_money,
        number=_number,
        upfirst=_upfirst,
        paragraphs=_paragraphs,
        person=_person,
        people=_people,
        as_list=_as_list,
        unique=_unique,
        inflect=_inflect,
        plural=plural,
    )
    env.globals.update(
        L=labels,
        BLANK=BLANK,
        with_relation=_with_relation,
        family_members=_family_members,
        by_person=_by_person,
        DOCUMENT_KINDS=DOCUMENT_KINDS,
    )
    return env


def render_html(kind: str, context: Mapping[str, Any]) -> str:
    """The document as a self-contained HTML page (styles inline); user data is HTML-escaped."""
    _validate(kind, context)
    template = _environment().get_template(f"{kind}.html")
    namespace = dict(context)
    namespace.setdefault("procedure", labels.PROCEDURE_REFERENCE)
    namespace["kind"] = kind
    namespace["title"] = DOCUMENT_KINDS[kind]
    return template.render(namespace)


def render_pdf(kind: str, context: Mapping[str, Any]) -> bytes:
    """The document as PDF bytes (A4; landscape for intake_journal and databank)."""
    return pdf_from_html(render_html(kind, context))


def pdf_from_html(html: str) -> bytes:
    """A page `render_html` gave, laid out as PDF bytes."""
    from weasyprint import HTML  # imported here: loading WeasyPrint takes a while and needs Pango

    return HTML(string=html, base_url=str(TEMPLATES_DIR)).write_pdf()


def render_contents_pdf(context: Mapping[str, Any]) -> bytes:
    """The contents page of a case file bundle («Личное дело»): ``case`` {number, family}, ``municipality``,
    ``generated_at`` and ``entries`` [{title, created_at, first_page, pages, included}]."""
    namespace = {**context, "kind": "bundle_contents", "title": "Личное дело"}
    return pdf_from_html(_environment().get_template("bundle_contents.html").render(namespace))
