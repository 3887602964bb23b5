"""The search web app: a FastAPI factory over a :class:`retrieval.search_engine.SearchEngine` and its page."""
