"""Images in language models: counting the bits an image tokenizer must carry (:mod:`.bits`, notebook
multimodal-lossless-input, article 9984), and autoregression over continuous patches (:mod:`.autoregression`,
notebook multimodal-autoregression, article 10197).
"""

from .bits import *  # noqa: F401,F403
from .autoregression import *  # noqa: F401,F403
