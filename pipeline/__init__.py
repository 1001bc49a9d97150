"""The GPT4All-style pipeline: collect -> curate -> train -> eval -> quantize, meeting at files in a run directory."""
