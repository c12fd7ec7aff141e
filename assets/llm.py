"""The ``llm`` group: prompts -> base model -> QLoRA adapter -> generated next purchases.

- ``base_lm`` (``assets.language_model``): the base causal LM; a configured Hugging Face id / local
  folder, or by default a small Llama pretrained here on the catalog and the queries;
- ``prompts`` (``assets.prompts``): every ``prompt_inputs`` target rendered with the paper's template
  (Figure 3) and the query memory's candidates, fitted to the token budget, for each prompt variant;
- ``lora_adapter`` (``assets.language_model``): QLoRA on the train prompts with the high-perplexity
  schedule;
- ``generations`` (``assets.generations``): ``{<id>..</id>,<title>..</title>}`` for the valid and test
  prompts, constrained to the catalog by default, parsed;
- ``illmrec`` (``assets.illmrec``): I-LLMRec, the frozen base model reading each history item's image as
  one token and ranking the whole category from its ``[REC]`` state.

Work is capped per preset so that ``tiny`` runs in a minute or two and ``demo`` in a few minutes on two
CPU cores; every cap is a config field and is reported in the metadata. Paper-scale presets are uncapped.
"""

from assets.generations import generations
from assets.illmrec import illmrec
from assets.language_model import base_lm, lora_adapter
from assets.prompts import prompts

llm_assets = [base_lm, prompts, lora_adapter, generations, illmrec]
