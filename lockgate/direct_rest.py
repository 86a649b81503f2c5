"""The REST calls Envoy routes to the router as they are, untranscoded.

POST /v1/chat/completions, /v1/messages and /v1/embeddings are on every
inference request's path, so Envoy sends them to the router's HTTP listener
(services/router/http_edge.py) instead of transcoding them to gRPC
(envoy/envoy.yaml.tmpl lists the same paths). Each stands for the gRPC method
the transcoder would have called: the access check hands that name to the
policy (services/auth/check.py) and the router's metrics use it, so a call is
named the same whichever way it came.
"""

_ROUTER = "/lockgate.router.v1.RouterService/"

#: (HTTP method, path) -> the gRPC method it stands for.
DIRECT_REST = {
    ("POST", "/v1/chat/completions"): _ROUTER + "OpenAIChatCompletions",
    ("POST", "/v1/messages"): _ROUTER + "AnthropicMessages",
    ("POST", "/v1/embeddings"): _ROUTER + "OpenAIEmbeddings",
}
