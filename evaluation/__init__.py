"""The evaluation protocol and what is built on it: ranks and metrics per slice, the LLM methods and
their ablations, the evaluation tables, the leaderboard, and RecBole's files and protocol."""
