"""Text processing for the notes part: tokenizers and sentence splitting (:mod:`.tokenize`), the longest common
subsequence and ROUGE-L (:mod:`.lcs`), pseudo-summaries and the T5 parameter count (:mod:`.summary`, notebook
t5-pegasus, article 8209), and the inverted index with BM25 (:mod:`.bm25`, notebook bm25-site-search, article 10088).
"""

from .tokenize import *  # noqa: F401,F403
from .lcs import *  # noqa: F401,F403
from .summary import *  # noqa: F401,F403
from .bm25 import *  # noqa: F401,F403
