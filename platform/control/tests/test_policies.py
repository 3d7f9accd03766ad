"""The tier policies as pure functions, including the caps as hard limits."""

from hypothesis import given
from hypothesis import strategies as st

from control.policies import (
    POLICIES,
    Limits,
    LinkState,
    RobustController,
    buffer_rule,
    fixed,
    throughput_rule,
)

# A scene where each channel adds ~200 B: k channels cost ~(36 + 200 k) B a frame.
SIZES = {k: 36 + 200.0 * k for k in range(1, 13)}


def state(**kw) -> LinkState:
    base = dict(
        throughput_kbps=[20.0] * 5,
        backlog=0,
        max_backlog=16,
        puback_ms=50.0,
        bytes_per_frame=SIZES,
        fps=1.0,
        tier=6,
        since_switch_s=60.0,
    )
    return LinkState(**{**base, **kw})


def test_kbps_at_uses_the_scene_bytes():
    assert state().kbps_at(5) == (36 + 1000) * 8 / 1000


def test_throughput_rule_takes_the_highest_tier_under_the_harmonic_mean():
    # 10 kbit/s * 0.9 safety = 9 kbit/s -> (36 + 200k) * 8 / 1000 <= 9 -> k = 5
    assert throughput_rule(state(throughput_kbps=[10.0] * 5), Limits()).tier == 5
    # one slow sample pulls a harmonic mean down much more than an arithmetic one
    assert throughput_rule(state(throughput_kbps=[40, 40, 40, 40, 2]), Limits()).tier < 5


def test_buffer_rule_maps_a_fuller_send_buffer_to_a_lower_tier():
    tiers = [buffer_rule(state(backlog=b), Limits()).tier for b in range(0, 17, 2)]
    assert tiers[0] == 12 and tiers[-1] == 1
    assert tiers == sorted(tiers, reverse=True)


def test_robust_steps_down_at_once_when_the_buffer_fills():
    decision = RobustController()(state(backlog=12, tier=10), Limits())
    assert decision.tier < 10 and "buffer" in decision.reason
    assert decision.inputs["buffer_fill"] == 0.75


def test_robust_holds_during_dwell_and_probes_up_on_an_idle_link():
    controller = RobustController(dwell_s=10)
    assert controller(state(since_switch_s=3, tier=6), Limits()).tier == 6
    probe = controller(state(since_switch_s=30, tier=6, throughput_kbps=[100.0] * 5), Limits())
    assert probe.tier == 7 and "probe" in probe.reason


def test_robust_drops_to_what_the_link_carries():
    # tier 12 needs ~19.5 kbit/s; the link gives 8
    lagging = state(tier=12, throughput_kbps=[8.0] * 5, backlog=2)
    decision = RobustController()(lagging, Limits())
    assert state().kbps_at(decision.tier) <= 8.0
    # the same throughput with an empty send buffer means the link kept up: no drop
    assert RobustController()(state(tier=12, throughput_kbps=[8.0] * 5), Limits()).tier == 12


def test_robust_shrinks_frames_when_acknowledgements_near_the_deadline():
    decision = RobustController()(
        state(tier=12, puback_ms=900.0, throughput_kbps=[20.0] * 5), Limits()
    )
    assert decision.tier < 12 and "PUBACK" in decision.reason
    # no probing up while acknowledgements are slow, even with an empty buffer
    slow = state(tier=6, puback_ms=400.0, throughput_kbps=[100.0] * 5)
    assert RobustController()(slow, Limits()).tier == 6


def test_manual_override_wins_within_min_max():
    for policy in POLICIES.values():
        assert policy()(state(), Limits(override=3)).tier == 3
        assert policy()(state(), Limits(override=11, max_tier=9)).tier == 9


@given(
    cap=st.floats(min_value=0.5, max_value=40),
    tp=st.lists(st.floats(min_value=0.1, max_value=200), min_size=1, max_size=8),
    backlog=st.integers(min_value=0, max_value=16),
    tier=st.integers(min_value=1, max_value=12),
    lo=st.integers(min_value=1, max_value=12),
    name=st.sampled_from(sorted(POLICIES)),
)
def test_no_policy_exceeds_the_cap_or_the_tier_limits(cap, tp, backlog, tier, lo, name):
    limits = Limits(min_tier=lo, max_tier=12, max_kbps=cap)
    s = state(throughput_kbps=tp, backlog=backlog, tier=tier)
    decision = POLICIES[name]()(s, limits)
    assert lo <= decision.tier <= 12
    # above the floor the admin set, the chosen tier's measured bitrate fits the cap
    if decision.tier > lo:
        assert s.kbps_at(decision.tier) <= cap


def test_fixed_policy_is_capped_too():
    assert fixed(12)(state(), Limits(max_kbps=5.0)).tier == 2  # (36 + 400) * 8 / 1000 <= 5
