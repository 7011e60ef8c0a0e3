"""The model worker: prompts, engine, batching, HTTP API with keys and rate limits, client."""
