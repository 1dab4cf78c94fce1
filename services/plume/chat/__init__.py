"""OpenAI-compatible chat completions and the model list, under Plume's policy, quotas and audit."""
