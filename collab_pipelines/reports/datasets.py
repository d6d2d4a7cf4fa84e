from collab_pipelines.warehouse.datasets import Dataset

DATASETS: list[Dataset] = []
