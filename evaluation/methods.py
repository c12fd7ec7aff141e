"""The names of the evaluation's methods (docs/evaluation.md "The methods"), in a torch-free module: the
Dagster code location reads them when it loads, and a run's config is checked against them.

The baselines' names are ``training.baseline_names``' (the ``baselines`` assets train them). Runs add
methods with a suffix (a prompt variant, an adapter, a retrieval ablation: ``evaluation.llm_methods``; a
baseline run: ``training.baseline_names.parse_run_method``).
"""

from training.baseline_names import BASELINES
from training.illmrec_names import METHOD as ILLMREC
from training.illmrec_names import METHODS as ILLMREC_METHODS

LLM_METHODS = ("llm_mixup", "llm_only")  # list methods, read from the generations table
# the LLM's controls (evaluation.controls): the prompt's candidates in a fixed or random order, retrieved
# as llm_mixup is, on the targets the LLM answered
CONTROL_METHODS = ("memory_first", "memory_random")
GENERATION_METHODS = (*LLM_METHODS, *CONTROL_METHODS)  # the methods that read the generations table
DEFAULT_METHODS = (*LLM_METHODS, *CONTROL_METHODS, "core", "popularity", *BASELINES, ILLMREC)
# every method a run may name: the defaults and I-LLMRec's ablations (illmrec-<variant>, trained when the
# illmrec asset is asked for them: training.illmrec_names)
KNOWN_METHODS = (*DEFAULT_METHODS, *(name for name in ILLMREC_METHODS if name != ILLMREC))
