"""The process stack behind `lockgate up`.

- layout: every port and path of a stack, from defaults, env and flags
- children: what runs (commands, environment, health checks), in start order
- health, process, backoff: health probes, spawning with PDEATHSIG, restart delays
- supervisor: start, wait for health, restart crashes, stop in reverse order
- state: run/stack.json, the running supervisor's record for other commands
- launch, detach, control: `lockgate up` (foreground / --detach), status, down
- envoy_config: renders Envoy's YAML for a layout
"""
