"""The data scientist's side of the project, with no Dagster: read data, try a model.

    from collab_pipelines.client import Client, try_model
    api = Client()                        # $COLLAB_API_URL and $COLLAB_API_TOKEN
    frames = api.frames_for("rain")       # what the contract's feature function receives
    result = try_model(".", suite="rain") # the working tree's verdict, shown inline in Jupyter

`pip install ./client` installs this side alone (the distribution collab-pipelines-client).
"""

from collab_pipelines.data_api.client import Client, DataApiError
from collab_pipelines.evaluation.local_try import TryError, TryResult, try_model

__all__ = ["Client", "DataApiError", "TryError", "TryResult", "try_model"]
