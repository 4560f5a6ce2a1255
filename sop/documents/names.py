"""Russian personal names in the grammatical case a document's sentence needs (pymorphy3 and its dictionary).

    inflect_name("Смирнова Ольга Викторовна", "datv") -> "Смирновой Ольге Викторовне"
    inflect_name("Иванов Петр Андреевич", "ablt")      -> "Ивановым Петром Андреевичем"

Cases are pymorphy3's grammeme codes: "gent" (родительный), "datv" (дательный), "accs" (винительный), "ablt"
(творительный), "loct" (предложный). A name is read as «Фамилия Имя [Отчество]»; the sex is taken from the
patronymic, else from the first name. A word the dictionary does not know as a surname, first name or
patronymic of that sex (e.g. «Долгих», a foreign first name) is left as it is, which is the rule for names that
do not decline; text that is not a personal name (a login, an organisation) is returned unchanged.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

__all__ = ["CASES", "inflect_name", "sex_of"]

CASES = frozenset({"nomn", "gent", "datv", "accs", "ablt", "loct"})
_WORD = re.compile(r"^[А-ЯЁ][а-яё]+(?:-[А-ЯЁ][а-яё]+)*$")


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    import pymorphy3  # loaded on first use: the dictionary takes a moment to open

    logging.getLogger("pymorphy3").setLevel(logging.WARNING)  # not a line per process in the command's output
    return pymorphy3.MorphAnalyzer(lang="ru")


def _parse(word: str, kind: str, sex: str | None) -> Any:
    """The dictionary's reading of the word as a name part (`Surn`, `Name`, `Patr`) in the nominative singular,
    of the given sex when known; None when there is none."""
    for parse in _analyzer().parse(word):
        tag = parse.tag
        if kind not in tag or "nomn" not in tag or "plur" in tag:
            continue
        if sex is None or sex in tag or "ms-f" in tag:
            return parse
    return None


def sex_of(full_name: str) -> str | None:
    """ "masc" or "femn" from the patronymic (or the first name), None when the name does not tell."""
    words = str(full_name or "").split()
    if len(words) >= 3:
        ending = words[2].lower()
        if ending.endswith(("вна", "чна", "кызы", "гызы")):
            return "femn"
        if ending.endswith(("вич", "ич", "оглы", "улы")):
            return "masc"
    if len(words) >= 2:
        parse = _parse(words[1], "Name", None)
        if parse is not None and parse.tag.gender in ("masc", "femn"):
            return parse.tag.gender
    return None


def _inflect_word(word: str, kind: str, sex: str | None, case: str) -> str:
    parts = word.split("-")
    if len(parts) > 1:  # a double surname: each part on its own
        return "-".join(_inflect_word(part, kind, sex, case) for part in parts)
    parse = _parse(word, kind, sex)
    if parse is None:
        return word
    grammemes = {case, sex} if sex else {case}
    form = parse.inflect(grammemes) or parse.inflect({case})
    if form is None:
        return word
    text = form.word
    if "ё" in text and "ё" not in word.lower():  # keep the spelling of the record: «Ильей», not «Ильёй»
        text = text.replace("ё", "е")
    return text[:1].upper() + text[1:]


def inflect_name(full_name: Any, case: str) -> Any:
    """The full name in the grammatical case; anything that is not a Russian full name is returned as it is."""
    if case not in CASES:
        raise ValueError(f"unknown grammatical case {case!r}; expected one of: {', '.join(sorted(CASES))}")
    if not isinstance(full_name, str) or case == "nomn":
        return full_name
    words = full_name.split()
    if not 2 <= len(words) <= 3 or not all(_WORD.match(w) for w in words):
        return full_name
    sex = sex_of(full_name)
    kinds = ("Surn", "Name", "Patr")
    return " ".join(_inflect_word(word, kind, sex, case) for word, kind in zip(words, kinds, strict=False))


def plural(count: Any, one: str, few: str, many: str) -> str:
    """The noun's form agreeing with the number: 1 член, 3 члена, 5 членов, 21 член, 12 членов."""
    try:
        n = abs(int(count))
    except (TypeError, ValueError):
        return many
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many
