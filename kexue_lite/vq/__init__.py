"""Vector quantisation: nearest codes, the straight-through estimator, the rotation trick and k-means
(:mod:`.quantize`), the quantiser module in its four modes (:mod:`.quantizer`), the toy autoencoder and its
trainer (:mod:`.toy`), all for notebooks vq-rotation-trick (article 10489) and simvq-linear-codebook (article 10519);
the factored SGD step of SimVQ (:mod:`.factored`, article 10519).
"""

from .quantize import *  # noqa: F401,F403
from .quantizer import *  # noqa: F401,F403
from .toy import *  # noqa: F401,F403
from .factored import *  # noqa: F401,F403
