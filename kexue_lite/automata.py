"""A tiny timed automaton for a projector behind a smart plug and an IR→USB keyboard receiver.

Serves ``notes/projector-automation`` (kexue.fm/archives/9365). The article's scheme: the plug
stays **on** by default; the "turn on" scene is "plug off, wait W seconds, plug on", which gives
the projector's "auto power-on when mains returns" a clean power-up edge; "turn off" is the
power key sent by IR and turned into a keyboard key by the receiver (a keyboard can shut an
Android box down but never wake it).

Model (all durations are whole ticks of 1 s; the constants are illustrative assumptions, not
measurements from the article). A state is a tuple ``(plug_on, phase, k)``:

* ``phase`` is one of :data:`PHASES`; ``k`` counts the seconds spent in a timed phase:
  ``HOLDUP(k)``: k seconds since the mains was cut (k = 0 .. hold_up-1), ``BOOTING(k)``
  (0 .. boot-1), ``SHUTDOWN(k)`` (0 .. shutdown-1), and with a metering plug ``STANDBY(k)``
  (seconds of low draw, 0 .. metering_cutoff-1). Every other phase has ``k = 0``.
* consistent states: with the plug on the projector is ON, STANDBY, BOOTING or SHUTDOWN; with
  the plug off it is UNPOWERED or HOLDUP.

Rules (the timed automaton of the notebook's "The idea"):

* ``plug_off`` on a powered projector gives ``HOLDUP(0)``; ``HOLDUP(k)`` becomes UNPOWERED
  after exactly ``hold_up`` seconds, so a plug that stays off W seconds registers a cold start
  iff ``W >= hold_up``.
* ``plug_on`` on UNPOWERED gives ``BOOTING(0)`` (auto power-on), ON after ``boot`` seconds;
  ``plug_on`` during HOLDUP gives STANDBY (assumption: a dip shorter than the hold-up is not a
  cold start).
* ``ir_power`` acts only in ON (``SHUTDOWN(0)``, STANDBY after ``shutdown`` seconds); it is
  ignored while BOOTING, SHUTDOWN, STANDBY or unpowered.
* metering plug (``metering_cutoff = c``): after c seconds of low draw (STANDBY) the plug
  switches itself off.

In a script, the actions of second t are applied (in list order) before the tick from t to t+1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from numbers import Integral

__all__ = ["PHASES", "ACTIONS", "ProjectorModel", "check_scene"]

#: Phases of the projector, in the order the notebook's plots use.
PHASES = ("UNPOWERED", "HOLDUP", "BOOTING", "ON", "SHUTDOWN", "STANDBY")
#: Actions a scene may schedule.
ACTIONS = ("plug_off", "plug_on", "ir_power")

State = tuple[bool, str, int]


def _duration(name: str, value: object, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int number of 1-s ticks, got {type(value).__name__}")
    if int(value) < 1:
        raise ValueError(f"{name} must be at least 1 tick (durations are positive), got {value}")
    return int(value)


class ProjectorModel:
    """The projector + smart plug + IR keyboard automaton (notebook ``notes/projector-automation``).

    ``hold_up``: seconds after a power cut before the controller registers a cold start
    (:math:`\\tau_h = RC\\ln(V_0/V_{th})`, rounded up to ticks, derivation 1); ``boot`` and
    ``shutdown``: seconds to boot and to shut down; ``metering_cutoff``: ``None`` for a plain
    plug, or the seconds of low draw (STANDBY) after which a power-metering plug switches off.
    """

    def __init__(self, hold_up: int = 3, boot: int = 25, shutdown: int = 5, metering_cutoff: int | None = None) -> None:
        self.hold_up = _duration("hold_up", hold_up)
        self.boot = _duration("boot", boot)
        self.shutdown = _duration("shutdown", shutdown)
        self.metering_cutoff = _duration("metering_cutoff", metering_cutoff, allow_none=True)

    def __repr__(self) -> str:
        return (f"ProjectorModel(hold_up={self.hold_up}, boot={self.boot}, shutdown={self.shutdown}, "
                f"metering_cutoff={self.metering_cutoff})")

    # ------------------------------------------------------------------ state space
    def _length(self, phase: str) -> int:
        """How many values ``k`` takes in ``phase``."""
        if phase == "HOLDUP":
            return self.hold_up
        if phase == "BOOTING":
            return self.boot
        if phase == "SHUTDOWN":
            return self.shutdown
        if phase == "STANDBY" and self.metering_cutoff is not None:
            return self.metering_cutoff
        return 1

    def states(self, consistent: bool = True) -> list[State]:
        """All states ``(plug_on, phase, k)``; with ``consistent`` only those the hardware allows
        (plug on: ON/STANDBY/BOOTING/SHUTDOWN; plug off: UNPOWERED/HOLDUP)."""
        if not isinstance(consistent, bool):
            raise TypeError(f"consistent must be a bool, got {type(consistent).__name__}")
        out = []
        for plug in (True, False):
            for phase in PHASES:
                if consistent and self.is_powered_phase(phase) != plug:
                    continue
                out.extend((plug, phase, k) for k in range(self._length(phase)))
        return out

    @staticmethod
    def is_powered_phase(phase: str) -> bool:
        """Whether ``phase`` needs mains (everything except UNPOWERED and HOLDUP)."""
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        return phase not in ("UNPOWERED", "HOLDUP")

    def validate(self, state: object) -> State:
        """Return ``state`` as a tuple, or raise ``ValueError``/``TypeError`` naming ``state``
        (malformed, out of range, or inconsistent: the dynamics are defined on consistent states)."""
        if not isinstance(state, tuple) or len(state) != 3:
            raise TypeError(f"state must be a tuple (plug_on, phase, k), got {state!r}")
        plug, phase, k = state
        if not isinstance(plug, bool):
            raise TypeError(f"state: plug_on must be a bool, got {plug!r}")
        if phase not in PHASES:
            raise ValueError(f"state: phase must be one of {PHASES}, got {phase!r}")
        if isinstance(k, bool) or not isinstance(k, Integral) or not 0 <= int(k) < self._length(phase):
            raise ValueError(f"state: k must be an int in [0, {self._length(phase)}) for {phase}, got {k!r}")
        if self.is_powered_phase(phase) != plug:
            raise ValueError(f"state {state!r} is inconsistent: the projector is {'un' if plug else ''}powered "
                             f"while the plug is {'on' if plug else 'off'}")
        return (plug, phase, int(k))

    # ------------------------------------------------------------------ dynamics
    def apply(self, action: str, state: State) -> State:
        """The state right after ``action`` ('plug_off', 'plug_on' or 'ir_power') at the current second."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
        plug, phase, k = self.validate(state)
        if action == "plug_off":
            if not plug:
                return state
            return (False, "HOLDUP", 0)  # a powered projector starts to lose its supply
        if action == "plug_on":
            if plug:
                return state
            if phase == "UNPOWERED":
                return (True, "BOOTING", 0)  # power-up edge: auto power-on
            return (True, "STANDBY", 0)  # HOLDUP; assumption: a short dip is not a cold start
        # ir_power: a keyboard key can shut the machine down but not wake it
        if plug and phase == "ON":
            return (True, "SHUTDOWN", 0)
        return state

    def step(self, state: State) -> State:
        """The state one second later, with no action."""
        plug, phase, k = self.validate(state)
        if phase == "HOLDUP":
            return (plug, "UNPOWERED", 0) if k + 1 >= self.hold_up else (plug, "HOLDUP", k + 1)
        if not plug:  # UNPOWERED
            return state
        if phase == "BOOTING":
            return (True, "ON", 0) if k + 1 >= self.boot else (True, "BOOTING", k + 1)
        if phase == "SHUTDOWN":
            return (True, "STANDBY", 0) if k + 1 >= self.shutdown else (True, "SHUTDOWN", k + 1)
        if phase == "STANDBY" and self.metering_cutoff is not None:
            return (False, "HOLDUP", 0) if k + 1 >= self.metering_cutoff else (True, "STANDBY", k + 1)
        return state

    def _schedule(self, script: Sequence[tuple[int, str]], horizon: int) -> dict[int, list[str]]:
        if isinstance(horizon, bool) or not isinstance(horizon, Integral):
            raise TypeError(f"horizon must be an int number of seconds, got {type(horizon).__name__}")
        if horizon < 0:
            raise ValueError(f"horizon must be non-negative, got {horizon}")
        if isinstance(script, (str, bytes)):
            raise TypeError("script must be a list of (second, action) pairs, got a string")
        at: dict[int, list[str]] = {}
        for item in script:
            if not isinstance(item, tuple) or len(item) != 2:
                raise TypeError(f"script entries must be (second, action) pairs, got {item!r}")
            t, action = item
            if isinstance(t, bool) or not isinstance(t, Integral):
                raise TypeError(f"script: the second must be an int, got {t!r}")
            if not 0 <= t < horizon:
                raise ValueError(f"script: second {t} is outside [0, horizon={horizon})")
            if action not in ACTIONS:
                raise ValueError(f"script: action must be one of {ACTIONS}, got {action!r}")
            at.setdefault(int(t), []).append(action)
        return at

    def trajectory(self, state: State, script: Sequence[tuple[int, str]], horizon: int) -> list[State]:
        """The full states at seconds 0 .. horizon (entry t is the state at the start of second t,
        before that second's actions; the last entry is the end state)."""
        state = self.validate(state)
        at = self._schedule(script, horizon)
        out = [state]
        for t in range(int(horizon)):
            for action in at.get(t, ()):
                state = self.apply(action, state)
            state = self.step(state)
            out.append(state)
        return out

    def run(self, state: State, script: Sequence[tuple[int, str]], horizon: int) -> list[tuple[int, bool, str]]:
        """The trace ``(t, plug_on, phase)`` for t = 0 .. horizon (see :meth:`trajectory`)."""
        return [(t, s[0], s[1]) for t, s in enumerate(self.trajectory(state, script, horizon))]


def check_scene(
    model: ProjectorModel,
    script: Sequence[tuple[int, str]],
    horizon: int,
    goal: Callable[[State], bool],
    *,
    starts: Iterable[State] | None = None,
) -> tuple[int, int, list[State]]:
    """Run ``script`` from every consistent start state (or from ``starts``) for ``horizon``
    seconds and test ``goal`` on the end state: ``(n_ok, n_total, failing start states)``.
    (Notebook ``notes/projector-automation``, the exhaustive check of the scenes.)"""
    if not isinstance(model, ProjectorModel):
        raise TypeError(f"model must be a ProjectorModel, got {type(model).__name__}")
    if not callable(goal):
        raise TypeError("goal must be callable as goal(state) -> bool")
    pool = model.states() if starts is None else [model.validate(s) for s in starts]
    if not pool:
        raise ValueError("starts must hold at least one state")
    failing = []
    for s in pool:
        ok = goal(model.trajectory(s, script, horizon)[-1])
        if not isinstance(ok, bool):
            raise TypeError(f"goal must return a bool, got {type(ok).__name__}")
        if not ok:
            failing.append(s)
    return len(pool) - len(failing), len(pool), failing
