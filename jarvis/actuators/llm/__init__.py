"""The LLM platform: routing weights in Redis (acted on) and usage against budget (observed)."""
