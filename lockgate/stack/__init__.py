"""The process stack behind `lockgate up`.

layout (ports and paths), children (what runs and how it is checked),
supervisor (start, watch, restart, stop), state (run/stack.json), detach and
control (a background stack: start, stop, probe). envoy_config renders Envoy's
YAML for a layout.
"""
