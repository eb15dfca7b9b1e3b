"""Risk logic of ``core``: reason codes, policy, pre-trade checks, risk states, rate limits."""
