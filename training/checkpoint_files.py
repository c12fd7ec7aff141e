"""The files of a saved sequence model (``training.sequential.save_sequential``): CORE and the baselines.

They live apart from the model code (``training.sequential`` re-exports them) so that the Dagster asset
check of ``item_id_vectors`` reads the saved CORE configuration without importing torch.
"""

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
VOCABULARY_FILE = "item_vocabulary.json"
