"""The shared tiny Transformer and the training experiments built on it (attention and training parts).

Core (specified once in the curriculum's "Shared component"): :mod:`config` (``BlockConfig``), :mod:`blocks`
(``TransformerBlock``, ``FeedForward``, ``init_weights``), :mod:`model` (``TinyTransformer``), :mod:`recorder`
(``ActivationRecorder``), :mod:`loop` (``train``), :mod:`tasks` (``make_batch``). Per notebook: :mod:`uniae` (8475),
:mod:`residual` (8994), :mod:`lesion` (9009), :mod:`gau_init` (8990), :mod:`widening` (8444), :mod:`side_tuning` (9138); :mod:`extrapolation` (the trained toy of length-extrapolation-review,
9948).
Builds on :mod:`kexue_lite.attention`, never the reverse.
"""

from .config import *  # noqa: F401,F403
from .blocks import *  # noqa: F401,F403
from .model import *  # noqa: F401,F403
from .recorder import *  # noqa: F401,F403
from .loop import *  # noqa: F401,F403
from .tasks import *  # noqa: F401,F403
from .uniae import *  # noqa: F401,F403
from .residual import *  # noqa: F401,F403
from .lesion import *  # noqa: F401,F403
from .gau_init import *  # noqa: F401,F403
from .widening import *  # noqa: F401,F403
from .side_tuning import *  # noqa: F401,F403
from .extrapolation import *  # noqa: F401,F403
