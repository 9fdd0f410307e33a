#!/usr/bin/env python3
"""A web backend that asks lookalike-server for similar products.

The shape most shops need: an HTTP endpoint receives a photo, the backend calls
Lookalike's Search over gRPC with the image bytes, and returns the most similar
catalogue items (ids, scores, metadata) as JSON.

    python client/python/example_backend.py --server localhost:50051 \
        --collection products --port 8080
    curl --data-binary @shoe.jpg 'http://localhost:8080/similar?k=5'
    curl 'http://localhost:8080/similar?text=red+summer+dress&k=5'   # CLIP models
    curl -o p1.jpg 'http://localhost:8080/thumbnail?id=p1'  # the picture Lookalike keeps of item p1

A server with TLS (docs/security.md#tls): --tls-ca ca.pem, and for mutual TLS
--tls-cert client.pem --tls-key client.key (or LOOKALIKE_TLS_CA,
LOOKALIKE_TLS_CERT, LOOKALIKE_TLS_KEY).

Python stubs are generated at start-up from proto/lookalike/v1/lookalike.proto
with grpcio-tools into a temporary folder (pinned in tools/requirements.txt),
so nothing generated is checked in.

Library use:
    backend = SimilarityBackend("localhost:50051", "products")  # api_key="lk_..." if the server has keys
    backend.similar_products(open("shoe.jpg", "rb").read(), k=5)
    backend.products_matching("red summer dress", k=5)  # the collection's model is CLIP
    jpeg, etag = backend.thumbnail("p1")  # the collection was created with thumbnail_size
    SimilarityBackend("search.example.com:50051", "products", tls_ca="ca.pem")  # TLS
"""

import argparse
import importlib
import json
import os
import sys
import tempfile
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(REPO_ROOT, "proto")
PROTO_FILE = "lookalike/v1/lookalike.proto"

_stubs = None


def load_stubs(proto_dir=PROTO_DIR):
    """Generates and imports lookalike_pb2 / lookalike_pb2_grpc (once per process)."""
    global _stubs
    if _stubs is not None:
        return _stubs
    from grpc_tools import protoc  # imported lazily: only needed once

    out_dir = tempfile.mkdtemp(prefix="lookalike_stubs_")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out_dir}",
                      f"--grpc_python_out={out_dir}", os.path.join(proto_dir, PROTO_FILE)])
    if rc != 0:
        raise RuntimeError(f"protoc failed ({rc}) on {os.path.join(proto_dir, PROTO_FILE)}")
    sys.path.insert(0, out_dir)
    pb2 = importlib.import_module("lookalike.v1.lookalike_pb2")
    pb2_grpc = importlib.import_module("lookalike.v1.lookalike_pb2_grpc")
    _stubs = (pb2, pb2_grpc)
    return _stubs


def tls_channel_credentials(tls_ca=None, tls_cert=None, tls_key=None):
    """grpc.ssl_channel_credentials from PEM files; ValueError naming the file or option."""
    if bool(tls_cert) != bool(tls_key):
        raise ValueError("tls_cert and tls_key: give both or neither")

    def read(option, path):
        if not path:
            return None
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise ValueError(f"{option}: cannot read \"{path}\": {e.strerror}") from e

    return grpc.ssl_channel_credentials(root_certificates=read("tls_ca", tls_ca),
                                        private_key=read("tls_key", tls_key),
                                        certificate_chain=read("tls_cert", tls_cert))


class SimilarityBackend:
    """Thin wrapper over the Lookalike stub; one channel shared by all requests."""

    def __init__(self, server, collection, timeout_s=10.0, api_key=None, tls_ca=None, tls_cert=None,
                 tls_key=None):
        """api_key: sent as "authorization: Bearer <key>" with every call (docs/security.md).
        tls_ca, tls_cert, tls_key: PEM file paths; any of them makes the channel TLS
        (tls_ca: the CA that signed the server's certificate, None = gRPC's default roots;
        tls_cert + tls_key: this client's certificate for mutual TLS)."""
        self.pb2, pb2_grpc = load_stubs()
        self.collection = collection
        self.timeout_s = timeout_s
        self.metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
        options = [("grpc.max_send_message_length", 64 << 20),
                   ("grpc.max_receive_message_length", 64 << 20)]
        if tls_ca or tls_cert or tls_key:
            self.channel = grpc.secure_channel(
                server, tls_channel_credentials(tls_ca, tls_cert, tls_key), options=options)
        else:
            self.channel = grpc.insecure_channel(server, options=options)
        self.stub = pb2_grpc.LookalikeStub(self.channel)

    def similar_products(self, image_bytes, k=10, filters=None, min_score=None):
        """Returns [{"id", "score", "metadata"}] best first.

        filters: {"key": "value" or ["v1", "v2"]}; raises grpc.RpcError with the
        server's code and message on bad input (e.g. INVALID_ARGUMENT for bytes
        that are not an image).
        """
        return self._search(self.pb2.Query(image=image_bytes), k, filters, min_score)

    def products_matching(self, text, k=10, filters=None, min_score=None):
        """Search by words ("red summer dress"), as similar_products. The
        collection's model must embed texts (a CLIP model: FAILED_PRECONDITION
        otherwise); an empty text is INVALID_ARGUMENT."""
        return self._search(self.pb2.Query(text=text), k, filters, min_score)

    def thumbnail(self, item_id):
        """(jpeg bytes, etag) of the thumbnail the server keeps of an item
        (GetThumbnail; the collection was created with thumbnail_size).
        grpc.RpcError NOT_FOUND for a missing item or an item without one,
        FAILED_PRECONDITION for a collection that keeps no thumbnails."""
        request = self.pb2.GetThumbnailRequest(collection=self.collection, id=item_id)
        response = self.stub.GetThumbnail(request, timeout=self.timeout_s, metadata=self.metadata)
        return response.jpeg, response.etag

    def _search(self, query, k, filters, min_score):
        request = self.pb2.SearchRequest(collection=self.collection, k=k, include_metadata=True)
        request.queries.append(query)
        for key, values in (filters or {}).items():
            if isinstance(values, str):
                values = [values]
            request.filter.add(key=key, values=list(values))
        if min_score is not None:
            request.min_score = min_score
        response = self.stub.Search(request, timeout=self.timeout_s, metadata=self.metadata)
        return [{"id": h.id, "score": h.score, "metadata": dict(h.metadata)}
                for h in response.results[0].hits]

    def close(self):
        self.channel.close()


# gRPC code -> HTTP status for the endpoint's errors.
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 503,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def make_handler(backend):
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 (http.server naming)
            url = urllib.parse.urlparse(self.path)
            params = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            if url.path == "/healthz":
                self._reply(200, {"ok": True})
            elif url.path == "/similar" and "text" in params:
                self._search(params, lambda k, filters: backend.products_matching(
                    params["text"][0], k=k, filters=filters))
            elif url.path == "/thumbnail" and params.get("id", [""])[0]:
                self._thumbnail(params["id"][0])
            else:
                self._reply(404, {"error": "POST an image to /similar?k=N, or GET /similar?text=... "
                                           "or /thumbnail?id=..."})

        def _thumbnail(self, item_id):
            """The item's picture, for <img src>: its ETag lets browsers keep it
            and revalidate (304 when If-None-Match still matches)."""
            try:
                jpeg, etag = backend.thumbnail(item_id)
            except grpc.RpcError as e:
                self._reply(_HTTP_STATUS.get(e.code(), 502),
                            {"error": e.details(), "code": e.code().name})
                return
            unchanged = etag and self.headers.get("If-None-Match") == etag
            self.send_response(304 if unchanged else 200)
            self.send_header("ETag", etag)
            self.send_header("Cache-Control", "no-cache")
            if unchanged:
                self.end_headers()
                return
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg)))
            self.end_headers()
            self.wfile.write(jpeg)

        def _search(self, params, run):
            try:
                k = int(params.get("k", ["10"])[0])
            except ValueError:
                self._reply(400, {"error": "k must be an integer"})
                return
            filters = {}
            for spec in params.get("filter", []):
                key, _, value = spec.partition("=")
                filters.setdefault(key, []).append(value)
            try:
                hits = run(k, filters)
            except grpc.RpcError as e:
                self._reply(_HTTP_STATUS.get(e.code(), 502),
                            {"error": e.details(), "code": e.code().name})
                return
            self._reply(200, {"results": hits})

        def do_POST(self):  # noqa: N802
            url = urllib.parse.urlparse(self.path)
            if url.path != "/similar":
                self._reply(404, {"error": "POST an image to /similar?k=N"})
                return
            params = urllib.parse.parse_qs(url.query)
            length = int(self.headers.get("Content-Length", "0"))
            image = self.rfile.read(length)
            self._search(params, lambda k, filters: backend.similar_products(
                image, k=k, filters=filters))

        def log_message(self, fmt, *args):  # keep test output quiet
            if os.environ.get("LOOKALIKE_EXAMPLE_LOG"):
                super().log_message(fmt, *args)

    return Handler


def serve(backend, port, host="127.0.0.1"):
    """Returns a started ThreadingHTTPServer (call .serve_forever() or run it in a thread)."""
    return ThreadingHTTPServer((host, port), make_handler(backend))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=os.environ.get("LOOKALIKE_SERVER", "localhost:50051"))
    parser.add_argument("--collection", required=True)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--query", help="instead of serving HTTP: print the results for this image file as JSON")
    parser.add_argument("--text", help="instead of serving HTTP: print the results for these words as JSON")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--api-key", default=os.environ.get("LOOKALIKE_API_KEY"),
                        help="API key, when the server has keys (default: $LOOKALIKE_API_KEY)")
    parser.add_argument("--tls-ca", default=os.environ.get("LOOKALIKE_TLS_CA"),
                        help="TLS: PEM CA certificates that signed the server's certificate")
    parser.add_argument("--tls-cert", default=os.environ.get("LOOKALIKE_TLS_CERT"),
                        help="TLS: this client's PEM certificate (mutual TLS)")
    parser.add_argument("--tls-key", default=os.environ.get("LOOKALIKE_TLS_KEY"),
                        help="TLS: the private key of --tls-cert")
    args = parser.parse_args(argv)
    try:
        backend = SimilarityBackend(args.server, args.collection, api_key=args.api_key,
                                    tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.text:
        try:
            print(json.dumps(backend.products_matching(args.text, k=args.k), indent=2))
        except grpc.RpcError as e:
            print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
        return 0
    if args.query:
        with open(args.query, "rb") as f:
            try:
                print(json.dumps(backend.similar_products(f.read(), k=args.k), indent=2))
            except grpc.RpcError as e:
                print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
                return 1
        return 0
    httpd = serve(backend, args.port)
    print(f"listening on http://127.0.0.1:{args.port}/similar (Lookalike at {args.server}, "
          f"collection {args.collection})", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
