"""The official documents (sop.documents): every kind renders to a PDF that carries the form and the case data."""

from __future__ import annotations

import copy
import datetime as dt
import io
import re

import pytest
from pypdf import PdfReader

from sop.documents import DOCUMENT_KINDS, labels, render_html, render_pdf

COMMISSION = "Комиссия по делам несовершеннолетних и защите их прав городского округа «Город Йошкар-Ола»"
MUNICIPALITY = "городской округ «Город Йошкар-Ола»"

CASE = {
    "number": "СОП-2025-017",
    "family_name": "Ивановы",
    "subject": "minor_and_family",
    "minors": [
        {
            "full_name": "Иванова Мария Петровна",
            "birth_date": dt.date(2012, 3, 14),
            "relation": "дочь",
            "occupation": "МБОУ «СОШ № 5 г. Йошкар-Олы», 7 «Б» класс",
        },
        {"full_name": "Иванов Илья Петрович", "birth_date": "2017-09-02", "occupation": "МБДОУ «Детский сад № 12»"},
    ],
    "parents": [
        {
            "full_name": "Иванова Елена Сергеевна",
            "birth_date": "1988-06-21",
            "relation": "мать",
            "occupation": "не работает",
        },
        {
            "full_name": "Иванов Петр Андреевич",
            "birth_date": "1985-01-30",
            "occupation": "ООО «СтройМаш», разнорабочий",
        },
    ],
    "address_registered": "г. Йошкар-Ола, ул. Красноармейская, д. 44, кв. 17",
    "address_actual": "г. Йошкар-Ола, ул. Петрова, д. 3, кв. 8",
    "danger_level": "high",
    "criteria": ["c2", "c7"],
    "detected_at": "2025-10-01",
    "detected_by": "МБОУ «СОШ № 5 г. Йошкар-Олы»",
    "registered_at": dt.date(2025, 10, 15),
    "housing": {"type": "apartment", "area": 42.5, "amenities": "comfortable", "sanitary": "unsatisfactory"},
    "income": {"salary": 25000, "benefits": 13450.5},
    "support_measures": ["единое пособие на детей"],
    "curator": {
        "full_name": "Смирнова Ольга Викторовна",
        "position": "специалист по социальной работе",
        "agency": "ГБУ РМЭ «КЦСОН в г. Йошкар-Оле»",
    },
}

ACTIVITIES = [
    {
        "number": 1,
        "title": "Консультация врача-нарколога",
        "content": "Беседа с матерью, направление на обследование",
        "agency": "ГБУ РМЭ «Республиканский наркологический диспансер»",
        "responsible": "Кузнецов А. В.",
        "term": "2025-11-15",
        "status": "planned",
    },
    {
        "number": 2,
        "title": "Социальный патронаж семьи",
        "content": "Посещение семьи 2 раза в месяц",
        "agency": "ГБУ РМЭ «КЦСОН в г. Йошкар-Оле»",
        "responsible": "Смирнова О. В.",
        "term": "ежемесячно",
        "status": "in_progress",
    },
]

RESOLUTION = {
    "number": "21/4",
    "date": "2025-10-15",
    "protocol": "21",
    "present": 9,
    "votes_for": 8,
    "votes_against": 1,
    "votes_abstained": 0,
    "text": "Мать несовершеннолетней злоупотребляет спиртными напитками.",
    "chair": {"full_name": "Соколов Дмитрий Александрович"},
    "secretary": {"full_name": "Белова Наталья Юрьевна"},
}

BASE = {
    "commission": COMMISSION,
    "municipality": MUNICIPALITY,
    "generated_at": dt.date(2025, 10, 30),
    "place": "г. Йошкар-Ола",
    "case": CASE,
}

CONTEXTS = {
    "intake_journal": {
        "journal": {
            "agency": "МБОУ «Средняя общеобразовательная школа № 5 г. Йошкар-Олы»",
            "period_from": "2025-01-01",
            "period_to": dt.date(2025, 12, 31),
            "entries": [
                {
                    "number": 1,
                    "received": "2025-10-01",
                    "source": "Классный руководитель Орлова Т. Н.",
                    "parents": ["Иванова Елена Сергеевна", "Иванов Петр Андреевич"],
                    "children": [{"full_name": "Иванова Мария Петровна", "birth_date": "2012-03-14"}],
                    "address": "г. Йошкар-Ола, ул. Петрова, д. 3, кв. 8",
                    "problem": "Пропуски занятий, ребенок приходит голодным",
                    "result": "Передано в КДНиЗП 02.10.2025",
                },
                {"number": 2, "received": "2025-10-20", "source": "raid", "children": "Сидоров Кирилл"},
            ],
        }
    },
    "conclusion": {"conclusion": {"text": "Семья находится в социально опасном положении.", "date": "2025-10-08"}},
    "registration_card": {
        "card": {
            "family_categories": ["large"],
            "parent_type": "asocial",
            "registers": {"police": {"date": "2025-09-20", "protocol": "5", "reason": "ст. 5.35 КоАП РФ"}},
            "head": {"full_name": "Петрова Анна Ивановна"},
        }
    },
    "programme": {
        "programme": {
            "goal": "Нормализация детско-родительских отношений",
            "approved_protocol": "23",
            "approved_date": "2025-10-29",
            "activities": ACTIVITIES,
            "potential": {"initial": "low"},
        }
    },
    "proposals": {
        "proposals": {
            "agency": "ГБУ РМЭ «КЦСОН в г. Йошкар-Оле»",
            "date": "2025-10-20",
            "plan": [{"situation": "Антисанитария в квартире", "tasks": "Улучшить быт", "planned": "Патронаж"}],
            "activities": ACTIVITIES[1:],
        }
    },
    "databank": {
        "databank": {
            "as_of": "2025-09-30",
            "rows": [
                {
                    "minor_full_name": "Иванова Мария Петровна",
                    "minor_birth_date": "2012-03-14",
                    "parents": [{"full_name": "Иванова Елена Сергеевна", "occupation": "не работает"}],
                    "address_registered": "г. Йошкар-Ола, ул. Красноармейская, д. 44, кв. 17",
                    "minor_occupation": "МБОУ «СОШ № 5»",
                    "registration_reason": "злоупотребление родителями алкоголем",
                    "registered_at": "2025-10-15",
                },
                {
                    "minor_full_name": "Петров Олег Игоревич",
                    "minor_birth_date": "2009-12-01",
                    "registered_at": "2024-03-01",
                    "removed_at": "2025-06-20",
                    "removal_reason": "age_18",
                },
            ],
        }
    },
    "resolution_recognition": {
        "resolution": {
            **RESOLUTION,
            "decision": "recognise",
            "ipr_from": "2025-10-15",
            "ipr_to": "2026-04-15",
            "working_group": [{"full_name": "Орлова Татьяна Николаевна", "position": "социальный педагог"}],
        }
    },
    "resolution_approval": {
        "resolution": {**RESOLUTION, "number": "23/2", "date": "2025-10-29", "review_date": "2026-04-15"},
        "programme": {"activities": ACTIVITIES},
    },
    "resolution_closure": {
        "resolution": {**RESOLUTION, "number": "7/3", "date": "2026-04-20", "grounds": "improved", "result": "full"}
    },
    "removal_act": {
        "removal_act": {
            "number": "5",
            "date": "2025-11-03T22:40",
            "inspection_act": {"number": "114", "date": "2025-11-03"},
            "circumstances": "Дети находились одни в квартире без еды более суток.",
            "placement": {"kind": "institution", "name": "ГБУ РМЭ «СРЦН»"},
            "head": {"position": "мэр города Йошкар-Олы", "full_name": "Петров Сергей Иванович"},
        }
    },
    "materials": {
        "materials": {"agency": "ОМВД России по г. Йошкар-Оле", "date": "2025-11-05", "requested_on": "2025-11-01",
                      "question": "Сведения о поведении подростка в школе и дома",
                      "answer": "На профилактическом учете в ПДН не состоит.\n\nЖалоб от соседей не поступало.",
                      "specialist": "Инспектор ПДН Орлов Д. С."}
    },
}

# What each PDF must show: the form's title and case data (compared without spaces and hyphens, since
# table cells wrap and hyphenate).
EXPECTED = {
    "intake_journal": [
        "ПРИЛОЖЕНИЕ № 1",
        "Журнал",
        "первичного учета",
        "Иванова Мария Петровна",
        "14.03.2012",
        "01.10.2025",
        "итоги профилактического рейда",
        "31.12.2025",
    ],
    "conclusion": [
        "ПРИЛОЖЕНИЕ № 2",
        "Заключение",
        "Иванова Мария Петровна",
        "14.03.2012",
        "Иванова Елена Сергеевна",
        "ул. Петрова, д. 3, кв. 8",
        "Высокий уровень риска",
        "42,5 кв.м",
        "25 000",
        "08.10.2025",
    ],
    "registration_card": [
        "ПРИЛОЖЕНИЕ № 3",
        "Учетная карта",
        "СОП-2025-017",
        "Иванова Мария Петровна",
        "Асоциальные",
        "ст. 5.35 КоАП РФ",
        "20.09.2025",
        "Петрова Анна Ивановна",
    ],
    "programme": [
        "ПРИЛОЖЕНИЕ № 4",
        "Индивидуальная программа",
        "протокол № 23 от 29.10.2025",
        "Иванова Мария Петровна",
        "Консультация врача-нарколога",
        "15.11.2025",
        "запланировано",
        "Нормализация детско-родительских отношений",
        "Смирнова Ольга Викторовна",
    ],
    "proposals": [
        "ПРИЛОЖЕНИЕ № 5",
        "Предложения",
        "ГБУ РМЭ «КЦСОН в г. Йошкар-Оле»",
        "Иванова Мария Петровна",
        "Социальный патронаж семьи",
        "Антисанитария в квартире",
    ],
    "databank": [
        "ПРИЛОЖЕНИЕ № 8",
        "Списки несовершеннолетних",
        "Иванова Мария Петровна",
        "14.03.2012",
        "15.10.2025",
        "20.06.2025",
        MUNICIPALITY,
        "30.09.2025",
    ],
    "resolution_recognition": [
        "ПОСТАНОВЛЕНИЕ № 21/4",
        "О признании",
        "Иванова Мария Петровна",
        "15.10.2025",
        "15.04.2026",
        "куратором случая Смирнову Ольгу Викторовну",  # the accusative: «назначить кого»
        "Орлова Татьяна Николаевна",
        "«за» — 8",
        "Соколов Дмитрий Александрович",
        COMMISSION.upper(),
    ],
    "resolution_approval": [
        "ПОСТАНОВЛЕНИЕ № 23/2",
        "Об утверждении индивидуальной программы",
        "Иванова Мария Петровна",
        "ГБУ РМЭ «Республиканский наркологический диспансер»",
        "15.04.2026",
    ],
    "resolution_closure": [
        "ПОСТАНОВЛЕНИЕ № 7/3",
        "О прекращении",
        "снять с учета",
        "Иванова Мария Петровна",
        "Достигнута полная реабилитация",
        "улучшение обстановки в семье",
        "10 рабочих дней",
    ],
    "materials": [
        "Сведения и материалы",
        "ОМВД России по г. Йошкар-Оле",
        "05.11.2025",
        "Сведения о поведении подростка в школе и дома",
        "На профилактическом учете в ПДН не состоит.",
        "Жалоб от соседей не поступало.",
        "Инспектор ПДН Орлов Д. С.",
        "Иванова Мария Петровна",
    ],
    "removal_act": [
        "АКТ № 5",
        "об отобрании ребенка",
        "статья 77 Семейного кодекса",
        "Иванова Мария Петровна",
        "Иванов Илья Петрович",
        "03.11.2025",
        "22:40",
        "ГБУ РМЭ «СРЦН»",
        "Петров Сергей Иванович",
        "уведомить прокурора",
    ],
}


def _context(kind: str) -> dict:
    return copy.deepcopy({**BASE, **CONTEXTS[kind]})


_PDFS: dict[str, bytes] = {}


def _pdf(kind: str) -> bytes:
    """Each kind is rendered once per test run."""
    if kind not in _PDFS:
        _PDFS[kind] = render_pdf(kind, _context(kind))
    return _PDFS[kind]


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _squash(text: str) -> str:
    return re.sub(r"[\s\-\u00ad\u2010]+", "", text)


def test_kinds_are_the_eleven_documents():
    assert set(DOCUMENT_KINDS) == set(CONTEXTS) == set(EXPECTED)
    assert DOCUMENT_KINDS["conclusion"].startswith("Заключение")
    assert DOCUMENT_KINDS["removal_act"].startswith("Акт об отобрании ребенка")


@pytest.mark.parametrize("kind", sorted(DOCUMENT_KINDS))
def test_pdf_shows_the_form_and_the_case_data(kind):
    pdf = _pdf(kind)
    assert pdf.startswith(b"%PDF")
    text = _squash(_text(pdf))
    missing = [s for s in EXPECTED[kind] if _squash(s) not in text]
    assert not missing, f"{kind}: not in the PDF text: {missing}"
    assert "None" not in text


def test_dates_are_printed_as_dd_mm_yyyy():
    text = _text(_pdf("conclusion"))
    assert "14.03.2012" in text and "02.09.2017" in text
    assert "2012-03-14" not in text and "2017-09-02" not in text


def test_pdf_embeds_the_serif_font():
    reader = PdfReader(io.BytesIO(_pdf("conclusion")))
    embedded = []
    for font in reader.pages[0]["/Resources"]["/Font"].values():
        font = font.get_object()
        if "/DescendantFonts" in font:
            descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"].get_object()
        else:
            descriptor = font["/FontDescriptor"].get_object()
        if any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")):
            embedded.append(str(font["/BaseFont"]))
    assert any("DejaVu-Serif" in name for name in embedded), embedded


def test_journal_and_databank_are_landscape_the_others_portrait():
    for kind, landscape in (("intake_journal", True), ("databank", True), ("conclusion", False)):
        box = PdfReader(io.BytesIO(_pdf(kind))).pages[0].mediabox
        assert (float(box.width) > float(box.height)) is landscape, kind


def test_user_input_is_escaped_in_html_and_kept_as_text_in_pdf():
    context = _context("conclusion")
    context["case"]["minors"][0]["full_name"] = "<script>alert(1)</script> Иванова"
    html = render_html("conclusion", context)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Иванова" in html
    assert "<script>alert(1)</script>" in _text(render_pdf("conclusion", context))


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("resolution_recognition", ("resolution", "number")),
        ("resolution_closure", ("resolution", "grounds")),
        ("intake_journal", ("journal", "agency")),
        ("programme", ("programme", "activities")),
        ("registration_card", ("case", "number")),
        ("databank", ("commission",)),
    ],
)
def test_missing_required_key_raises_naming_kind_and_key(kind, path):
    context = _context(kind)
    holder = context
    for part in path[:-1]:
        holder = holder[part]
    del holder[path[-1]]
    with pytest.raises(ValueError, match=re.escape(".".join(path))) as error:
        render_html(kind, context)
    assert kind in str(error.value)


def test_alternative_required_keys():
    context = _context("conclusion")
    del context["case"]["danger_level"]
    with pytest.raises(ValueError, match=r"conclusion\.danger_level\|case\.danger_level"):
        render_html("conclusion", context)
    context["conclusion"]["danger_level"] = "critical"
    assert "Критический уровень" in render_html("conclusion", context)


def test_unknown_codes_and_kinds_are_rejected():
    context = _context("conclusion")
    context["case"]["danger_level"] = "extreme"
    with pytest.raises(ValueError, match="case.danger_level"):
        render_html("conclusion", context)
    context = _context("resolution_closure")
    context["resolution"]["grounds"] = ["age_18", "bored"]
    with pytest.raises(ValueError, match="bored"):
        render_html("resolution_closure", context)
    with pytest.raises(ValueError, match="unknown document kind"):
        render_html("letter", {})


MINIMAL = {
    "intake_journal": {"journal": {"agency": "МБОУ «СОШ № 5»", "entries": []}},
    "conclusion": {"case": {"minors": [], "danger_level": "low"}},
    "registration_card": {"case": {"minors": [{"full_name": "Иванова Мария Петровна"}], "number": "1"}},
    "programme": {"case": {"minors": [], "parents": None}, "programme": {"activities": []}},
    "proposals": {"case": {"minors": []}, "proposals": {"agency": "КЦСОН"}},
    "databank": {"databank": {"rows": []}},
    "resolution_recognition": {"case": {"minors": []}, "resolution": {"number": "1", "date": "2025-01-01"}},
    "resolution_approval": {"case": {"minors": []}, "resolution": {"number": "1", "date": "2025-01-01"}},
    "resolution_closure": {
        "case": {"minors": []},
        "resolution": {"number": "1", "date": "2025-01-01", "grounds": "age_18"},
    },
    "removal_act": {"removal_act": {"date": "2025-01-01", "children": [{"full_name": "Иванова Мария Петровна"}]}},
    "materials": {"case": {"minors": []}, "materials": {"agency": "КЦСОН", "answer": "—"}},
}


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_missing_optional_keys_render_as_blank_lines(kind):
    html = render_html(kind, {"commission": COMMISSION, "municipality": MUNICIPALITY, **MINIMAL[kind]})
    assert "________" in html
    assert "None" not in html and "Undefined" not in html


def test_minimal_document_renders_to_pdf():
    context = {"commission": COMMISSION, "municipality": MUNICIPALITY, **MINIMAL["resolution_recognition"]}
    text = _text(render_pdf("resolution_recognition", context))
    assert "ПОСТАНОВЛЕНИЕ № 1" in text and "________" in text


def test_labels():
    assert list(labels.FAMILY_CRITERIA) == [f"c{i}" for i in range(1, 9)]
    assert set(labels.REGISTRATION_CARD_SITUATIONS) == set(labels.FAMILY_CRITERIA)
    assert labels.DANGER_LEVELS == {"low": "низкий", "medium": "средний", "high": "высокий", "critical": "критический"}
    assert set(labels.DANGER_LEVEL_TEXTS) == set(labels.DANGER_LEVEL_TITLES) == set(labels.DANGER_LEVELS)
    assert list(labels.CLOSURE_GROUNDS) == [
        "age_18",
        "court",
        "death_minor",
        "death_parents",
        "moved",
        "improved",
        "other",
    ]
    assert set(labels.CLOSURE_GROUNDS_SHORT) == set(labels.CLOSURE_GROUNDS)
    assert list(labels.CLOSURE_RESULTS) == ["full", "partial", "none"]
