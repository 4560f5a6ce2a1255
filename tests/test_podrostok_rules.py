"""Every counting rule of Appendix 6 (seed 002, operation «Подросток») on a synthetic cohort built here.

The cohort (municipality of one test; June 2026 unless said otherwise; «S» = column of children in СОП families,
«I» = column of minors on ИПР):

| child | born | age on 1.06.2026 | band | register | employment / reason |
|---|---|---|---|---|---|
| A | 2022-06-01 | 4 (birthday that day) | A (0–4) | S since 2025 | reason «too_young» entered for June |
| B | 2021-06-01 | 5 (birthday that day) | B (5–6) | S since 2025 | 3.4 playground 1–30.06 |
| C | 2021-06-02 | 4 (turns 5 the next day) | A | S since 2025 | nothing |
| D | 2008-06-02 | 17 (18 on 2.06) | F (16–17) | S since 2025 | 3.2 temporary job 10–20.06 |
| E | 2008-06-01 | 18 on 1.06 | — adult | S since 2025 | 3.1 (ignored: no minor) |
| F | 2012-03-15 | 14 | E (14–15) | S since 2025 | 3.1 job 5.06–31.08, 3.3 club 1–30.06, 3.2 1–10.07 and 1–5.08 |
| G | 2015-01-01 | 11 | D (10–13) | S from 26.06.2026 (5 days in June) | nothing |
| H | 2018-09-10 | 7 | C (7–9) | S and I (two registries) | 3.8 day camp 1–21.06 |
| I | 2010-02-01 | 16 | F | S since 2025 | reason «hospital» entered for June |
| J | 2013-07-01 | 12 | D | S since 2025 | nothing |
| K | 2016-01-01 | 10 | — | S 1.04–31.05 (removed_on 1.06) | — not on the register in June |
| L | 2016-05-05 | 10 | D | S 1.05–3.06 (removed_on 4.06: 3 days in June) | nothing |
| M | 2019-01-01 | 7 | C | S in two cases (2025 and 2026) | 3.14 other 1–30.06 |
| X | 2014-01-01 | — | — | on no register | 3.1 (ignored) |
"""

from __future__ import annotations

from datetime import date

import pytest

from sop.reports.podrostok import (
    IPR,
    SOP,
    Employment,
    Excuse,
    Period,
    Registration,
    band_of,
    consolidate,
    count,
    count_all,
    month,
    summer,
)

D = date.fromisoformat
OLD = D("2025-01-10")

REGISTRATIONS = [
    Registration("A", SOP, D("2022-06-01"), OLD),
    Registration("B", SOP, D("2021-06-01"), OLD),
    Registration("C", SOP, D("2021-06-02"), OLD),
    Registration("D", SOP, D("2008-06-02"), OLD),
    Registration("E", SOP, D("2008-06-01"), OLD),
    Registration("F", SOP, D("2012-03-15"), OLD),
    Registration("G", SOP, D("2015-01-01"), D("2026-06-26")),
    Registration("H", SOP, D("2018-09-10"), OLD),
    Registration("H", IPR, D("2018-09-10"), D("2025-11-01")),
    Registration("I", SOP, D("2010-02-01"), OLD),
    Registration("J", SOP, D("2013-07-01"), OLD),
    Registration("K", SOP, D("2016-01-01"), D("2026-04-01"), D("2026-06-01")),
    Registration("L", SOP, D("2016-05-05"), D("2026-05-01"), D("2026-06-04")),
    Registration("M", SOP, D("2019-01-01"), D("2025-01-01")),
    Registration("M", SOP, D("2019-01-01"), D("2026-02-01")),
]
EMPLOYMENT = [
    Employment("B", "3.4", D("2026-06-01"), D("2026-06-30")),
    Employment("D", "3.2", D("2026-06-10"), D("2026-06-20")),
    Employment("E", "3.1", D("2026-06-01"), D("2026-08-31")),
    Employment("F", "3.1", D("2026-06-05"), D("2026-08-31")),
    Employment("F", "3.3", D("2026-06-01"), D("2026-06-30")),
    Employment("F", "3.2", D("2026-07-01"), D("2026-07-10")),
    Employment("F", "3.2", D("2026-08-01"), D("2026-08-05")),
    Employment("H", "3.8", D("2026-06-01"), D("2026-06-21")),
    Employment("M", "3.14", D("2026-06-01"), D("2026-06-30")),
    Employment("X", "3.1", D("2026-06-01"), D("2026-06-30")),
]
EXCUSES = [Excuse("A", "too_young", D("2026-06-01"), D("2026-06-30")),
           Excuse("I", "hospital", D("2026-06-01"), D("2026-06-30"))]
JUNE = month(2026, 6)


@pytest.fixture(scope="module")
def june():
    return count(JUNE, REGISTRATIONS, EMPLOYMENT, EXCUSES)


def members(form, code, column=SOP) -> set:
    return form.columns[column].members[code]


def test_age_bands_are_full_years_both_ends_inclusive():
    day = D("2026-06-01")
    assert band_of(D("2022-06-01"), day) == "1"  # 4 today: the top of band A
    assert band_of(D("2021-06-02"), day) == "1"  # 5 only tomorrow
    assert band_of(D("2021-06-01"), day) == "2"  # 5 today: the bottom of band B
    assert band_of(D("2019-06-01"), day) == "3"  # 7 today: band C
    assert band_of(D("2016-06-01"), day) == "4"  # 10: band D
    assert band_of(D("2012-06-01"), day) == "5"  # 14: band E
    assert band_of(D("2008-06-02"), day) == "6"  # 17 and 364 days: band F
    assert band_of(D("2008-06-01"), day) is None  # 18 today: no minor
    assert band_of(None, day) is None


def test_row_1_is_the_register_on_the_first_day_plus_those_registered_in_the_month(june):
    # on 1.06: A B C D F H I J L M (E is 18, K was removed on 1.06 itself); registered in June: G. M has two cases
    # and counts once.
    assert members(june, "1") == set("ABCDFGHIJLM")
    assert june.value("1", SOP) == 11
    # bands: A = A, C; B = B; C = H, M; D = G, J, L; E = F; F = D, I -> 2+1+2+3+1+2 = 11
    assert [june.value(f"1.{s}", SOP) for s in "123456"] == [2, 1, 2, 3, 1, 2]


def test_row_3_counts_a_child_once_and_sub_rows_are_not_summed_into_it(june):
    # covered in June: B (3.4), D (3.2), F (3.1 and 3.3), H (3.8), M (3.14) = 5 children; E (adult) and X (on no
    # register) are ignored; F's July/August entries are not June's.
    assert members(june, "3") == set("BDFHM")
    assert june.value("3", SOP) == 5
    subrows = {code: june.value(code, SOP) for code in ("3.1", "3.2", "3.3", "3.4", "3.8", "3.14")}
    assert subrows == {"3.1": 1, "3.2": 1, "3.3": 1, "3.4": 1, "3.8": 1, "3.14": 1}
    assert sum(subrows.values()) == 6 != june.value("3", SOP)  # F in two forms: 6 entries, 5 children
    assert june.value("3.6", SOP) == 0


def test_row_4_and_the_valid_reasons_of_4_1(june):
    # not covered: A C G I J L = 6. Valid reasons: A (too_young, entered), I (hospital, entered), G (registered on
    # 26.06: 5 days on the register in June, derived), L (removed on 4.06: 3 days, derived). C and J have none.
    assert members(june, "4") == set("ACGIJL")
    assert members(june, "4.1") == set("AGIL")
    assert (june.value("4", SOP), june.value("4.1", SOP)) == (6, 4)


def test_row_2_is_row_1_minus_4_1_band_by_band(june):
    # 11 - 4 = 7: B C D F H J M; bands: A = C (A excused); B = B; C = H, M; D = J (G, L excused); E = F; F = D
    assert members(june, "2") == set("BCDFHJM")
    assert june.value("2", SOP) == june.value("1", SOP) - june.value("4.1", SOP) == 7
    assert [june.value(f"2.{s}", SOP) for s in "123456"] == [1, 1, 2, 1, 1, 1]


def test_coverage_percentages_use_the_band_specific_denominators(june):
    p = lambda code: june.percent(code, SOP)  # noqa: E731
    assert p("3") == 71.4  # 5 * 100 / 7 (row 2)
    assert p("4") == 54.5  # 6 * 100 / 11 (row 1)
    assert p("3.1") == 50.0  # 1 * 100 / (2.5 + 2.6 = 1 + 1)
    assert p("3.2") == 50.0
    assert p("3.3") == 16.7  # 1 * 100 / (2.2 + … + 2.6 = 1 + 2 + 1 + 1 + 1 = 6)
    assert p("3.4") == 16.7
    assert p("3.6") == 0.0  # 0 * 100 / (2.3 + 2.4 + 2.5 = 2 + 1 + 1 = 4)
    assert p("3.8") == 20.0  # 1 * 100 / (2.3 + … + 2.6 = 2 + 1 + 1 + 1 = 5)
    assert p("3.9") == 0.0  # 0 / (2.4 + 2.5 + 2.6 = 3)
    assert p("3.14") == 14.3  # 1 * 100 / (2.1 + … + 2.6 = 7)


def test_a_percentage_with_a_zero_denominator_is_none():
    form = count(JUNE, [Registration("Z", SOP, D("2023-01-01"), OLD)], [],
                 [Excuse("Z", "too_young", D("2026-06-01"), D("2026-06-30"))])
    # Z (3 years) is excused: row 2 = 0, so row 3 % and every sub-row % have no denominator
    assert form.value("2", SOP) == 0 and form.percent("3", SOP) is None and form.percent("3.14", SOP) is None
    assert form.percent("4", SOP) == 100.0
    assert count(JUNE, []).percent("4", IPR) is None


def test_a_child_on_two_registries_counts_in_each_column_and_once_in_both(june):
    # H is in the ИПР column (alone there) and in the СОП column
    assert members(june, "1", IPR) == {"H"} and "H" in members(june, "1", SOP)
    assert (june.value("1", IPR), june.value("1.3", IPR), june.value("3", IPR), june.value("3.8", IPR)) == \
        (1, 1, 1, 1)
    assert june.percent("3.8", IPR) == 100.0
    both = count_all(JUNE, REGISTRATIONS, EMPLOYMENT, EXCUSES)
    assert both.rows["1"] == 11  # 11 + 1 by column, H once
    assert both.rows["3"] == 5


def test_an_entered_reason_outside_the_period_or_off_the_list_does_not_excuse():
    regs = [Registration("C", SOP, D("2021-06-02"), OLD)]
    assert count(JUNE, regs, [], [Excuse("C", "hospital", D("2026-07-01"), D("2026-07-31"))]).value("4.1", SOP) == 0
    assert count(JUNE, regs, [], [Excuse("C", "holidays", D("2026-06-01"), D("2026-06-30"))]).value("4.1", SOP) == 0


def test_a_covered_child_is_never_in_row_4_even_with_a_reason():
    regs = [Registration("N", SOP, D("2015-01-01"), D("2026-06-25"))]  # 6 days in June: would be short
    form = count(JUNE, regs, [Employment("N", "3.14", D("2026-06-28"), D("2026-06-28"))],
                 [Excuse("N", "away", D("2026-06-01"), D("2026-06-30"))])
    assert (form.value("3", SOP), form.value("4", SOP), form.value("4.1", SOP), form.value("2", SOP)) == (1, 0, 0, 1)


def test_short_registration_is_at_most_seven_days():
    # registered on 24.06: 24-30 June = 7 days -> valid reason; on 23.06: 8 days -> not
    seven = count(JUNE, [Registration("P", SOP, D("2015-01-01"), D("2026-06-24"))])
    eight = count(JUNE, [Registration("P", SOP, D("2015-01-01"), D("2026-06-23"))])
    assert (seven.value("4.1", SOP), eight.value("4.1", SOP)) == (1, 0)
    # on the register all month, never registered nor removed in it: no derived reason
    assert count(JUNE, [Registration("Q", SOP, D("2015-01-01"), OLD)]).value("4.1", SOP) == 0


def test_monthly_figures_are_not_cumulative():
    july = count(month(2026, 7), REGISTRATIONS, EMPLOYMENT, EXCUSES)
    # on 1.07: A B C F G H I J M (D turned 18 on 2.06, L was removed); nobody registered in July
    assert july.columns[SOP].members["1"] == set("ABCFGHIJM")
    # only F has an entry overlapping July (3.1 from June to August, 3.2 1-10.07): June's coverage is not carried
    assert july.columns[SOP].members["3"] == {"F"}
    assert (july.value("3.1", SOP), july.value("3.2", SOP), july.value("3.3", SOP)) == (1, 1, 0)
    # G has been on the register since 26.06: no short stay in July; the June reasons do not cover July
    assert july.columns[SOP].members["4.1"] == set()


def test_the_summer_summary_counts_each_child_once():
    form = count(summer(2026), REGISTRATIONS, EMPLOYMENT, EXCUSES)
    # row 1: everyone of June (D is 17 on 1.06); row 3: B D F H M once each though F has entries in three months
    assert form.columns[SOP].members["1"] == set("ABCDFGHIJLM")
    assert form.columns[SOP].members["3"] == set("BDFHM")
    # 3.2: D (June) and F (July and August, two entries) = 2 children
    assert form.value("3.2", SOP) == 2
    assert form.value("3.1", SOP) == 1
    # G: 67 days on the register in the summer, no short stay; L: 3 days, short; A and I: reasons entered
    assert form.columns[SOP].members["4.1"] == set("AIL")
    assert (form.value("4", SOP), form.value("2", SOP)) == (6, 8)


def test_the_region_sums_the_municipalities_and_recomputes_the_percentages(june):
    other = count(JUNE, [Registration("R", SOP, D("2012-01-01"), OLD), Registration("S", SOP, D("2011-01-01"), OLD)],
                  [Employment("R", "3.1", D("2026-06-01"), D("2026-06-30"))])
    region = consolidate([june, other], JUNE)
    # rows: 11 + 2, 7 + 2, 5 + 1; 3.1: 1 + 1 over (2.5 + 2.6) = (1 + 1) + (1 + 1)
    assert (region.value("1", SOP), region.value("2", SOP), region.value("3", SOP)) == (13, 9, 6)
    assert region.value("3.1", SOP) == 2 and region.percent("3.1", SOP) == 50.0
    assert region.percent("3", SOP) == 66.7  # 6 * 100 / 9, not the mean of 71.4 and 50.0


def test_a_period_must_not_end_before_it_starts():
    with pytest.raises(ValueError):
        Period(D("2026-06-30"), D("2026-06-01"))


def test_short_registration_counts_the_days_of_all_registrations_once():
    # removed on 4.06 (1-3 June) and registered again on 26.06 (26-30 June): 3 + 5 = 8 days -> no derived reason;
    # two overlapping cases of 1-5 and 3-7 June (removed on 6.06 and 8.06): 7 days -> a derived reason
    twice = [Registration("T", SOP, D("2015-01-01"), D("2026-05-01"), D("2026-06-04")),
             Registration("T", SOP, D("2015-01-01"), D("2026-06-26"))]
    overlapping = [Registration("U", SOP, D("2015-01-01"), D("2026-06-01"), D("2026-06-06")),
                   Registration("U", SOP, D("2015-01-01"), D("2026-06-03"), D("2026-06-08"))]
    assert count(JUNE, twice).value("4.1", SOP) == 0
    assert count(JUNE, overlapping).value("4.1", SOP) == 1
    assert count(JUNE, twice).value("1", SOP) == 1  # one child
