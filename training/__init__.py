"""What fits weights: the domain base LM, QLoRA, the title encoder, CORE and the sequential baselines,
and the shares of training users they learn from. No Dagster here."""
