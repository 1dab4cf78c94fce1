"""Drafting: the five kinds of documents, from request to reviewed draft: prompts, the
provider call, parsing, checking, ACTES classification, long synthèses, exports."""
