"""Developer and operator tools around the pipeline, not on its hot path.

Owns: ``localkafka/`` ``pulse kafka start|stop|status`` (a single-node broker
from Maven Central jars, no Docker); ``synthetic.py`` (with
``synthetic_shoppers.py`` and ``synthetic_visits.py``) seeded shoppers with
ground-truth labels; ``replay.py`` ``pulse replay``, the core over a file as the
workers run it; ``tail.py`` ``pulse tail``; ``dlq.py`` ``pulse dlq inspect|replay``;
``train.py`` (with ``train_examples``, ``train_models``, ``train_metrics``,
``train_baselines``) ``pulse train``; ``cdnow.py`` ``pulse cdnow``, the public
CDNOW purchase log as events; ``batch_examples.py`` a test fixture deriving
training examples in batch until the stream emits them.

May import: the runtime's pure pieces (:mod:`pipeline.worker`'s partitioner and
source model, for replay), :mod:`pipeline.contract`, :mod:`pipeline.core`,
:mod:`pipeline.config`, :mod:`pipeline.errors`. Only the CLI imports the tools.
"""
