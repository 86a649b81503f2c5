"""Prompt APIs: a prompt template published as a REST API.

Pure logic, no I/O; one job per module:

- ``template``: the logic-less template language (parse at publish, render at invoke);
- ``schema``: JSON Schema (Draft 2020-12) checks of input/output schemas and input validation;
- ``compat``: breaking-change check between two input schemas, version numbers;
- ``spec``: a published version (templates, schemas, model, parameters) checked as one;
- ``render``: the OpenAI chat completions request for one invocation.
"""
