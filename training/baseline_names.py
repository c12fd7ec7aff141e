"""The baseline methods of the evaluation by name (DESIGN.md), grouped by what they need.

They live apart from the models in ``training.baselines`` (which re-exports them) so that the Dagster code
location declares one asset per baseline without importing torch.
"""

ID_BASELINES = ("gru4rec", "sasrec", "bert4rec", "nextitnet")
TEXT_ID_BASELINES = ("llm2sasrec", "llmseqsim")  # sequence models that need item_title_vectors
SEQUENCE_BASELINES = ID_BASELINES + TEXT_ID_BASELINES
TEXT_BASELINES = ("text_seq_query",)
BASELINES = SEQUENCE_BASELINES + TEXT_BASELINES
