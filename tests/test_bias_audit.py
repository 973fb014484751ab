"""The bias audit (rpt_segment_composition_audit) on planted data: a segment that over-selects one
income band is flagged, the same audit on a balanced segment is not, and imputed values never
create a flag. The audited attributes come from var bias_audit_attributes (no SQL edit): the
test audits income_band, a declared trait that exists only in this hand-built profile table.
Declared categorical traits of the tracking plan are audited without the var; pii ones never.
"""

from __future__ import annotations

import duckdb
import pytest
from conftest import make_warehouse, query
from real_shaped_oracle import plan_declaring

from personalization.dbt_runner import DbtError, run_dbt

# 200 profiles. income_band: even ids 'high', odd ids 'low' (declared, no provenance column).
# age_band: ids 1-100 observed ('25-34' when id % 4 in (0, 1), else '35-44'); ids 101-200 all
# imputed as '55-64'.
# Segment premium: even ids <= 120 (60 high) and odd ids <= 20 (10 low): low share 10/70 = 0.14
# against 0.5 in the population (ratio 0.29); its 10 imputed ages ('55-64', share 0.14 against
# 0.5) would be a flag too if imputed values were judged; its 60 observed ages are balanced.
# Segment balanced: ids 1-80 (40 high, 40 low; observed ages only, balanced).
PROFILES = """
create table marts.dim_user_profiles as
select
    'p' || lpad(cast(i as varchar), 3, '0') as canonical_user_id,
    case when i % 2 = 0 then 'high' else 'low' end as income_band,
    case
        when i > 100 then '55-64'
        when i % 4 in (0, 1) then '25-34'
        else '35-44'
    end as age_band,
    case when i > 100 then 'imputed' else 'declared' end as age_source,
    'declared' as income_band_source,
    sha256('company ' || cast(i as varchar)) as company
from range(1, 201) as t (i)
"""
SEGMENTS = """
create table marts.dim_segments as
select * from (values ('premium'), ('balanced')) as s (segment_name)
"""
MEMBERSHIP = """
create table marts.fct_segment_membership as
select 'premium' as segment_name, 'p' || lpad(cast(i as varchar), 3, '0') as canonical_user_id,
    'member' as status
from range(1, 201) as t (i)
where (i % 2 = 0 and i <= 120) or (i % 2 = 1 and i <= 20)
union all
select 'balanced', 'p' || lpad(cast(i as varchar), 3, '0'), 'member'
from range(1, 81) as t (i)
"""
ATTRIBUTES = ["income_band", {"column": "age_band", "source_column": "age_source"}]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("bias_audit")
    (root / "landing").mkdir()
    warehouse = make_warehouse(root, root / "landing")
    with duckdb.connect(str(warehouse.db_path)) as con:
        con.execute("create schema marts")
        for sql in (PROFILES, SEGMENTS, MEMBERSHIP):
            con.execute(sql)
    return warehouse


def audit(warehouse, **dbt_vars: object) -> dict[tuple[str, str, str], tuple]:
    run_dbt(
        ["run", "--select", "rpt_segment_composition_audit"],
        warehouse,
        dbt_vars={
            "segment_clusters_enabled": False,
            "bias_audit_attributes": ATTRIBUTES,
            **dbt_vars,
        },
    )
    rows = query(
        warehouse,
        "select group_name, attribute_name, attribute_value, value_status, members_in_cell, "
        "representation_ratio, is_four_fifths_flag from marts.rpt_segment_composition_audit",
    )
    return {row[:3]: row[3:] for row in rows}


def test_over_selected_income_band_is_flagged_and_imputed_values_never_are(planted):
    cells = audit(planted)
    flagged = sorted(key for key, value in cells.items() if value[3])
    assert flagged == [("premium", "income_band", "low")]
    status, members, ratio, _ = cells[("premium", "income_band", "low")]
    assert (status, members) == ("observed", 10)
    assert ratio == pytest.approx((10 / 70) / 0.5)
    # the balanced segment: both bands at ratio 1.0, no flag
    for band in ("high", "low"):
        assert cells[("balanced", "income_band", band)][2:] == (pytest.approx(1.0), False)
    # imputed ages: one 'imputed' cell, counted, never judged; observed ages are balanced
    assert cells[("premium", "age_band", "imputed")] == ("imputed", 10, None, False)
    assert ("premium", "age_band", "55-64") not in cells
    assert cells[("premium", "age_band", "25-34")][2] == pytest.approx(1.0)


def test_judging_imputed_values_would_raise_a_false_flag(planted):
    """The planted fault: treat imputed values as observed and the same data raises a flag on
    the imputed age band - the flag the audit above must not raise."""
    cells = audit(planted, bias_audit_unobserved_sources=["none"])
    status, members, ratio, flag = cells[("premium", "age_band", "55-64")]
    assert (status, members, flag) == ("observed", 10, True)
    assert ratio == pytest.approx((10 / 70) / 0.5)


# income_band declared in the tracking plan (categorical); company declared pii
DECLARED = plan_declaring({
    "income_band": {"type": "string", "accepted": ["high", "low"]},
    "company": {"type": "string", "pii": True},
})  # fmt: skip
AGE_ONLY = [{"column": "age_band", "source_column": "age_source"}]


def test_declared_categorical_traits_are_audited_without_a_var_edit(planted):
    """income_band is not in bias_audit_attributes: declaring it is enough. The pii trait
    company is never audited."""
    cells = audit(planted, tracking_plan=DECLARED, bias_audit_attributes=AGE_ONLY)
    assert {key[1] for key in cells} == {"age_band", "income_band"}
    flagged = sorted(key for key, value in cells.items() if value[3])
    assert flagged == [("premium", "income_band", "low")]


def test_a_pii_trait_is_refused_as_an_audit_attribute(planted):
    with pytest.raises(DbtError, match="'company' is a pii trait"):
        audit(planted, tracking_plan=DECLARED, bias_audit_attributes=["company"])
