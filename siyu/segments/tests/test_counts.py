"""Segments over real rows: the SQL compiler, the bitmap index, and that they always agree."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.customers.merging import customer_merge
from siyu.customers.models import Customer
from siyu.customers.services import relation_deleted
from siyu.segments.errors import SegmentError
from siyu.segments.index import segment_index
from siyu.segments.selectors import segment_count, segment_customers
from siyu.segments.tests.conftest import World


def members(expression: str) -> set[int]:
    return set(segment_customers(expression).values_list("pk", flat=True))


def both_counts(expression: str) -> tuple[int, int]:
    bitmap = segment_count(expression=expression, engine="bitmap").count
    return bitmap, segment_count(expression=expression, engine="sql").count


def test_the_issue_example_selects_exactly_the_intended_customers(world: World) -> None:
    wanted = world.customer(tags=["高意向", "上海"], added=world.days_ago(10))
    world.customer(tags=["高意向", "上海", "已购"], added=world.days_ago(10))  # bought already
    world.customer(tags=["高意向", "上海"], added=world.days_ago(120))  # added too long ago
    world.customer(tags=["高意向"], added=world.days_ago(3))  # not in 上海
    expression = 'tag:"高意向" and tag:"上海" and not tag:"已购" and added_within:90d'

    assert members(expression) == {wanted.pk}
    assert both_counts(expression) == (1, 1)
    assert segment_count(expression=expression).engine == "bitmap"


def test_stage_staff_attributes_and_dates(world: World) -> None:
    paid = world.customer(stage="paid", attrs={"city": "上海", "level": 3}, staff="bob")
    intent = world.customer(stage="intent", attrs={"city": "北京", "level": 1, "tier": "gold"})
    old = world.customer(added=world.days_ago(400), attrs={"birthday": "1990-05-01"})

    assert members("stage:paid") == {paid.pk}
    assert members("staff:bob") == {paid.pk}
    assert members('attr.city = "上海"') == {paid.pk}
    assert members('attr.city != "上海"') == {intent.pk, old.pk}
    assert members("attr.level >= 2") == {paid.pk}
    assert members('attr.tier = "gold"') == {intent.pk}
    assert members("attr.birthday < 2000-01-01") == {old.pk}
    assert members("added_within:30d") == {paid.pk, intent.pk}
    assert members("not added_within:30d") == {old.pk}
    assert members("stage:paid or stage:intent and staff:alice") == {paid.pk, intent.pk}
    assert both_counts("attr.level >= 2 or stage:intent") == (2, 2)
    assert segment_count(expression="attr.level >= 2").engine == "bitmap+sql"


def test_behaviour_counts_include_customers_without_events_when_zero_matches(
    world: World,
) -> None:
    twice = world.customer()
    never = world.customer()
    world.set_tags(twice, ["a"])
    world.set_tags(twice, ["b"])  # two customer.tags_changed events

    assert members('count(event:"customer.tags_changed", 7d) >= 2') == {twice.pk}
    assert members('count(event:"customer.tags_changed", 7d) < 1') == {never.pk}
    assert members('count(event:"customer.tags_changed", 7d) != 2') == {never.pk}
    assert both_counts('count(event:"customer.tags_changed", 7d) = 0') == (1, 1)


def test_a_merged_records_events_count_for_the_survivor(world: World) -> None:
    survivor = world.customer()
    absorbed = world.customer()
    world.set_tags(survivor, ["a"])
    world.set_tags(absorbed, ["b"])  # one tags_changed event on each record
    expression = 'count(event:"customer.tags_changed", 7d) >= 2'
    assert members(expression) == set()
    customer_merge(survivor_id=survivor.pk, absorbed_id=absorbed.pk, source="api")
    assert members(expression) == {survivor.pk}
    assert both_counts(expression) == (1, 1)


def test_same_named_tags_in_two_groups_and_disambiguation(world: World) -> None:
    north = world.customer(tags=["华北/重点"])
    south = world.customer(tags=["华南/重点"])

    assert members('tag:"重点"') == {north.pk, south.pk}
    assert members('tag:"华南/重点"') == {south.pk}


@pytest.mark.parametrize(
    ("expression", "message", "position"),
    [
        ('tag:"no such tag"', "unknown tag 'no such tag'", 0),
        ("stage:vip", "unknown stage 'vip'", 0),
        ("staff:mallory", "unknown staff member 'mallory'", 0),
        ('stage:paid and attr.colour = "red"', "unknown field attr.colour", 15),
        ('attr.level = "three"', "attr.level is a number field", 13),
        ("attr.city > 3", "attr.city is a text field", 12),
        ('attr.tier = "bronze"', "'bronze' is not a choice of attr.tier", 12),
        ('count(event:"content.nope", 7d) > 1', "unknown event type 'content.nope'", 0),
    ],
)
def test_unknown_names_are_errors_with_positions(
    world: World, expression: str, message: str, position: int
) -> None:
    with pytest.raises(SegmentError) as caught:
        segment_customers(expression)

    assert message in caught.value.message
    assert caught.value.position == position


def test_merged_customers_are_never_members(world: World) -> None:
    survivor = world.customer(tags=["VIP"])
    absorbed = world.customer(tags=["VIP"])
    assert both_counts('tag:"VIP"') == (2, 2)

    customer_merge(survivor_id=survivor.pk, absorbed_id=absorbed.pk, source="console")

    assert members('tag:"VIP"') == {survivor.pk}
    assert members('not tag:"VIP"') == set()
    assert both_counts('tag:"VIP"') == (1, 1)


def test_the_index_catches_up_from_the_event_log(world: World) -> None:
    customer = world.customer(tags=["A"])
    index = segment_index()
    assert both_counts('tag:"A"') == (1, 1)

    world.set_tags(customer, ["B"])  # removes A, adds B
    relation_deleted(
        staff=world.company["alice"],
        external_userid=customer.identities.get().value,
        at=world.days_ago(0),
        by="customer",
        source="sandbox",
    )
    late = world.customer(tags=["A"], stage="paid", staff="bob")

    assert segment_index() is index  # caught up, not rebuilt
    assert both_counts('tag:"A"') == (1, 1)
    assert both_counts('tag:"B"') == (1, 1)
    assert both_counts("staff:alice") == (0, 0)
    assert both_counts("stage:paid and staff:bob and added_within:1d") == (1, 1)
    assert members('tag:"A"') == {late.pk}


def test_counts_stay_within_the_callers_data_scope(world: World) -> None:
    world.customer(tags=["A"], staff="alice")
    world.customer(tags=["A"], staff="bob")
    world.customer(tags=["A"], staff="carol")
    company = world.company

    for engine in ("bitmap", "sql"):
        assert segment_count(expression='tag:"A"', actor=company["ops"], engine=engine).count == 3
        assert (
            segment_count(expression='tag:"A"', actor=company["manager"], engine=engine).count == 2
        )
        assert segment_count(expression='tag:"A"', actor=company["alice"], engine=engine).count == 1


TAGS = ["t0", "t1", "t2", "t3"]
leaf = st.one_of(
    st.sampled_from([f'tag:"{t}"' for t in TAGS]),
    st.sampled_from(["stage:normal", "stage:paid", "staff:alice", "staff:bob"]),
    st.sampled_from(["added_within:30d", "added_before:2020-01-01", "attr.level >= 2"]),
)
expressions = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda e: f"not ({e})", inner),
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
    ),
    max_leaves=6,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(expression=expressions)
def test_bitmap_and_sql_counts_agree_on_generated_expressions(
    generated_world: World, expression: str
) -> None:
    assert both_counts(expression)[0] == both_counts(expression)[1]


@pytest.fixture
def generated_world(world: World) -> World:
    import random

    rng = random.Random(4)
    for i in range(40):
        customer = world.customer(
            staff=rng.choice(["alice", "bob"]),
            tags=rng.sample(TAGS, rng.randint(0, 3)),
            stage=rng.choice(["", "paid"]),
            attrs={"level": rng.randint(0, 3)} if i % 3 else None,
            added=world.days_ago(rng.choice([1, 20, 60, 3000])),
        )
        if i % 10 == 9:
            keeper = Customer.objects.exclude(pk=customer.pk).filter(merged_into=None).first()
            assert keeper is not None
            customer_merge(survivor_id=keeper.pk, absorbed_id=customer.pk, source="console")
    return world
