"""Routing through LiteLLM: the routing file, the policy of who may use which deployment, the
gateway itself, the offline provider, token counts and energy estimates."""
