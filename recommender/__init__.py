"""The recommendation core that training, evaluation and serving share: encoders, vector tables,
retrieval, the query memory, prompts, the language model, constrained generation, mixup and metrics."""
