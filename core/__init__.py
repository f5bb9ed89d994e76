"""The bottom layer: infrastructure every app may use, importing no app of this project.

Database-thread helpers, local caches, request ids, the inline middleware and the ASGI handler,
health and outages, draining, the LLM client and token estimate, the application error type, and
the registries through which apps hand their hooks, periodic jobs and demo data to it.
"""
