"""The code of every registered policy model, logged with it (MLflow's models-from-code).

MLflow runs this file to build the model instead of unpickling one: it hands MLflow a
fresh ``QTablePolicy``, whose ``load_context`` reads the plain artifacts (``q_table`` as
``.npy`` without pickle, ``space`` as JSON) and verifies their digest
(``rlv2.serving``). Keep it this small: it is copied into every logged model, and
``rlv2.serving.load_policy`` refuses a model whose copy differs from this file.
"""

from mlflow.models import set_model

from rlv2.serving import QTablePolicy

set_model(QTablePolicy())
