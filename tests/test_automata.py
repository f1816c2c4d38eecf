"""Tests for kexue_lite.automata (notebook notes/projector-automation).

Expected values are counted by hand from the rules in the module docstring (the state list and
the outcome of each scene, state by state), not read off the code: e.g. the plain "plug on"
scene fails exactly from the states in which the plug is already on and the projector is not
going to be ON by itself (SHUTDOWN, STANDBY), or the plug is off but the supply has not yet
decayed (HOLDUP).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kexue_lite.automata import ACTIONS, PHASES, ProjectorModel, check_scene


def is_on(s):
    return s[1] == "ON"


def turn_on(W):
    return [(0, "plug_off"), (W, "plug_on")]


# ------------------------------------------------------------------ the state space
@pytest.mark.parametrize("h,b,d", [(3, 25, 5), (1, 1, 1), (8, 4, 2)])
def test_state_count_matches_hand_count(h, b, d):
    m = ProjectorModel(hold_up=h, boot=b, shutdown=d)
    # plug on: ON, STANDBY, BOOTING(0..b-1), SHUTDOWN(0..d-1); plug off: UNPOWERED, HOLDUP(0..h-1)
    assert len(m.states()) == 2 + b + d + 1 + h
    assert len(set(m.states())) == len(m.states())
    # without the consistency filter: both plug positions for every (phase, k)
    assert len(m.states(consistent=False)) == 2 * (1 + h + b + 1 + d + 1)
    assert set(m.states()) <= set(m.states(consistent=False))


def test_default_model_has_36_consistent_states():
    m = ProjectorModel()
    S = m.states()
    assert len(S) == 36
    assert sum(not s[0] for s in S) == 4  # UNPOWERED, HOLDUP(0), HOLDUP(1), HOLDUP(2)


def test_metering_adds_standby_counter():
    m = ProjectorModel(metering_cutoff=60)
    assert len(m.states()) == 36 - 1 + 60
    assert sum(s[1] == "STANDBY" for s in m.states()) == 60


# ------------------------------------------------------------------ invariants of the dynamics
def test_dynamics_preserve_consistency():
    for m in (ProjectorModel(), ProjectorModel(hold_up=2, boot=3, shutdown=2, metering_cutoff=4)):
        S = set(m.states())
        for s in S:
            assert m.step(s) in S
            for a in ACTIONS:
                assert m.apply(a, s) in S


def test_ir_never_powers_on():
    """A keyboard key changes only ON (to SHUTDOWN(0)); no IR-only script reaches ON from a
    state that would not reach ON without it."""
    m = ProjectorModel(hold_up=2, boot=3, shutdown=2)
    for s in m.states():
        after = m.apply("ir_power", s)
        assert after == ((True, "SHUTDOWN", 0) if s[1] == "ON" else s)
    for s in [(True, "STANDBY", 0), (False, "UNPOWERED", 0), (True, "SHUTDOWN", 1)]:
        for times in itertools.chain.from_iterable(itertools.combinations(range(8), r) for r in range(4)):
            traj = m.trajectory(s, [(t, "ir_power") for t in times], 12)
            assert all(x[1] != "ON" for x in traj)


def test_plug_actions_idempotent():
    m = ProjectorModel()
    for s in m.states():
        for a in ("plug_off", "plug_on"):
            once = m.apply(a, s)
            assert m.apply(a, once) == once


def test_hold_up_is_exactly_tau_seconds():
    for h in range(1, 9):
        m = ProjectorModel(hold_up=h)
        traj = m.trajectory((True, "ON", 0), [(0, "plug_off")], h + 2)
        phases = [x[1] for x in traj]
        # cut at second 0: HOLDUP during seconds 1..h-1, UNPOWERED from second h on
        assert phases[1:h] == ["HOLDUP"] * (h - 1) and phases[h] == "UNPOWERED"


def test_boot_trace_from_standby():
    m = ProjectorModel()
    trace = m.run((True, "STANDBY", 0), turn_on(10), 40)
    # plug back at 10 -> BOOTING(0) during second 10 -> ON at second 10 + 25 = 35
    first_on = next(t for t, _, ph in trace if ph == "ON")
    assert first_on == 35
    assert trace[0] == (0, True, "STANDBY") and trace[2] == (2, False, "HOLDUP") and trace[5] == (5, False, "UNPOWERED")
    assert [t for t, plug, _ in trace if not plug] == list(range(1, 11))


# ------------------------------------------------------------------ the scenes (hand counts)
@pytest.mark.parametrize("h", range(1, 9))
def test_turn_on_scene_step_function(h):
    m = ProjectorModel(hold_up=h)
    n = len(m.states())
    for W in range(0, 13):
        ok, total, failing = check_scene(m, turn_on(W), W + 25 + 3, is_on)
        assert total == n
        # W >= h: every state; W < h: UNPOWERED and the HOLDUP(k) with k + W >= h (W of them)
        assert ok == (n if W >= h else 1 + W)
        assert len(failing) == total - ok


def test_plain_plug_on_fails_from_nine_states():
    m = ProjectorModel()
    ok, total, failing = check_scene(m, [(0, "plug_on")], 60, is_on)
    expected = {(True, "STANDBY", 0), *((True, "SHUTDOWN", k) for k in range(5)), *((False, "HOLDUP", k) for k in range(3))}
    assert set(failing) == expected and (ok, total) == (27, 36)


def test_turn_off_scene_outcomes():
    m = ProjectorModel()
    ends = [m.trajectory(s, [(0, "ir_power")], 60)[-1][1] for s in m.states()]
    assert (ends.count("STANDBY"), ends.count("UNPOWERED"), ends.count("ON")) == (7, 4, 25)
    ends2 = [m.trajectory(s, [(0, "ir_power"), (26, "ir_power")], 60)[-1][1] for s in m.states()]
    assert (ends2.count("STANDBY"), ends2.count("UNPOWERED"), ends2.count("ON")) == (32, 4, 0)


def test_metering_switches_plug_off_after_cutoff():
    m = ProjectorModel(metering_cutoff=60)
    traj = m.trajectory((True, "ON", 0), [(0, "ir_power")], 80)
    enter = next(t for t, s in enumerate(traj) if s[1] == "STANDBY")
    off = next(t for t, s in enumerate(traj) if not s[0])
    assert enter == 5 and off - enter == 60
    ok, total, _ = check_scene(m, [(0, "ir_power"), (26, "ir_power")], 110, lambda s: s == (False, "UNPOWERED", 0))
    assert ok == total == 95


@pytest.mark.parametrize("h,d,c", [(3, 5, 60), (2, 3, 7), (1, 1, 1)])
def test_metering_plain_plug_on_window(h, d, c):
    """The metering scheme's own "turn on" (a plain plug_on). By hand: it fails from every state
    in which the plug is on but the projector is not heading for ON (STANDBY(0..c-1),
    SHUTDOWN(0..d-1)) and from HOLDUP(0..h-1) (a short dip lands in STANDBY): c + d + h states.
    From ON, key at 0: STANDBY at d, plug cut at d + c, unpowered at d + c + h; so plug_on at
    second t reaches ON iff t >= d + c + h."""
    m = ProjectorModel(hold_up=h, boot=4, shutdown=d, metering_cutoff=c)
    ok, total, failing = check_scene(m, [(0, "plug_on")], 12, is_on)
    assert len(failing) == c + d + h and ok == 1 + 4 + 1 and total == ok + c + d + h
    assert {s[1] for s in failing} == {"STANDBY", "SHUTDOWN", "HOLDUP"}
    window = d + c + h
    for t in range(1, window + 6):
        end = m.trajectory((True, "ON", 0), [(0, "ir_power"), (t, "plug_on")], t + 10)[-1]
        assert is_on(end) == (t >= window), t


def test_check_scene_starts_and_numpy_ints():
    m = ProjectorModel(hold_up=np.int64(3), boot=np.int32(25))
    ok, total, failing = check_scene(m, [(np.int64(0), "plug_on")], 40, is_on, starts=[(True, "STANDBY", 0)])
    assert (ok, total, failing) == (0, 1, [(True, "STANDBY", 0)])


# ------------------------------------------------------------------ errors name the argument
@pytest.mark.parametrize("kw", ["hold_up", "boot", "shutdown", "metering_cutoff"])
def test_bad_durations(kw):
    with pytest.raises(ValueError, match=kw):
        ProjectorModel(**{kw: -1})
    with pytest.raises(ValueError, match=kw):
        ProjectorModel(**{kw: 0})
    with pytest.raises(TypeError, match=kw):
        ProjectorModel(**{kw: 2.5})
    with pytest.raises(TypeError, match=kw):
        ProjectorModel(**{kw: True})


def test_bad_actions_states_scripts():
    m = ProjectorModel()
    with pytest.raises(ValueError, match="action"):
        m.apply("power_on", (True, "ON", 0))
    with pytest.raises(ValueError, match="inconsistent"):
        m.step((True, "HOLDUP", 1))
    with pytest.raises(ValueError, match="state"):
        m.step((True, "BOOTING", 25))
    with pytest.raises(ValueError, match="phase"):
        m.step((True, "SLEEP", 0))
    with pytest.raises(TypeError, match="state"):
        m.step(["on", "ON", 0])
    with pytest.raises(ValueError, match="horizon"):
        m.run((True, "ON", 0), [], -1)
    with pytest.raises(ValueError, match="script"):
        m.run((True, "ON", 0), [(5, "plug_off")], 5)
    with pytest.raises(ValueError, match="script"):
        m.run((True, "ON", 0), [(0, "reboot")], 5)
    with pytest.raises(TypeError, match="goal"):
        check_scene(m, [], 5, None)
    with pytest.raises(TypeError, match="goal"):
        check_scene(m, [], 5, lambda s: 1)
    with pytest.raises(ValueError, match="starts"):
        check_scene(m, [], 5, is_on, starts=[])
    with pytest.raises(TypeError, match="model"):
        check_scene("model", [], 5, is_on)
    assert set(PHASES) == {"UNPOWERED", "HOLDUP", "BOOTING", "ON", "SHUTDOWN", "STANDBY"}
