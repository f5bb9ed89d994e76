"""Development tools, outside the production apps: the OpenAI-compatible LLM simulator and the
helpers the tests and the benchmarks share (served processes, the SSE client).

The production image leaves this package out (Dockerfile, INCLUDE_DEVTOOLS); settings install it
as a Django app only where it exists, for its ``llm_simulator`` management command.
"""
