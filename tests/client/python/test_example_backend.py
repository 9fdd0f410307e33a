"""client/python/example_backend.py against an in-process fake Lookalike servicer.

Checks what the example sends (collection, k, image bytes, filters) and how it
maps replies and gRPC errors to its function result and HTTP endpoint. The same
example is run against the real server by tests/integration.
"""

import json
import os
import sys
import threading
import urllib.error
import urllib.request
from concurrent import futures

import grpc
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "client", "python"))
import example_backend  # noqa: E402

pb2, pb2_grpc = example_backend.load_stubs()
THUMBNAIL = b"\xff\xd8\xff\xe0 thumbnail of p1"
THUMBNAIL_ETAG = '"00112233aabbccdd"'


class FakeLookalike(pb2_grpc.LookalikeServicer):
    def __init__(self):
        self.requests = []
        self.authorization = []  # the "authorization" metadata of each call (None if absent)

    def Search(self, request, context):
        self.requests.append(request)
        self.authorization.append(dict(context.invocation_metadata()).get("authorization"))
        if request.collection != "products":
            context.abort(grpc.StatusCode.NOT_FOUND, f'collection "{request.collection}" not found')
        if request.queries[0].WhichOneof("query") == "text" and request.queries[0].text == "":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "queries[0]: text is empty")
        if request.queries[0].image == b"not an image":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "queries[0]: cannot decode image")
        hits = [pb2.Hit(id=f"p{i}", score=1.0 - 0.1 * i, metadata={"rank": str(i)}) for i in range(request.k)]
        return pb2.SearchResponse(results=[pb2.QueryResult(hits=hits)])

    def GetThumbnail(self, request, context):
        self.requests.append(request)
        self.authorization.append(dict(context.invocation_metadata()).get("authorization"))
        if request.collection != "products":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f'collection "{request.collection}" keeps no thumbnails')
        if request.id != "p1":
            context.abort(grpc.StatusCode.NOT_FOUND, f'no item "{request.id}"')
        return pb2.GetThumbnailResponse(jpeg=THUMBNAIL, etag=THUMBNAIL_ETAG)


@pytest.fixture()
def fake_server():
    servicer = FakeLookalike()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb2_grpc.add_LookalikeServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(None)


def test_similar_products_sends_request_and_maps_hits(fake_server):
    servicer, address = fake_server
    backend = example_backend.SimilarityBackend(address, "products")
    hits = backend.similar_products(b"\xff\xd8jpeg", k=3, filters={"color": "red", "size": ["S", "M"]},
                                    min_score=0.25)
    assert [h["id"] for h in hits] == ["p0", "p1", "p2"]
    assert hits[1]["score"] == pytest.approx(0.9)
    assert hits[2]["metadata"] == {"rank": "2"}
    req = servicer.requests[-1]
    assert req.collection == "products" and req.k == 3 and req.include_metadata
    assert req.queries[0].image == b"\xff\xd8jpeg"
    assert {f.key: list(f.values) for f in req.filter} == {"color": ["red"], "size": ["S", "M"]}
    assert req.HasField("min_score") and req.min_score == pytest.approx(0.25)
    backend.close()


def test_products_matching_sends_a_text_query(fake_server):
    servicer, address = fake_server
    backend = example_backend.SimilarityBackend(address, "products")
    hits = backend.products_matching("red summer dress", k=2, filters={"size": "S"})
    assert [h["id"] for h in hits] == ["p0", "p1"]
    req = servicer.requests[-1]
    assert req.queries[0].WhichOneof("query") == "text"
    assert req.queries[0].text == "red summer dress"
    assert {f.key: list(f.values) for f in req.filter} == {"size": ["S"]}
    backend.close()


def test_similar_products_raises_server_error(fake_server):
    _, address = fake_server
    backend = example_backend.SimilarityBackend(address, "nope")
    with pytest.raises(grpc.RpcError) as err:
        backend.similar_products(b"x", k=1)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in err.value.details()


def test_http_endpoint(fake_server):
    _, address = fake_server
    backend = example_backend.SimilarityBackend(address, "products")
    httpd = example_backend.serve(backend, 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        with urllib.request.urlopen(urllib.request.Request(base + "/similar?k=2&filter=color%3Dred",
                                                           data=b"\xff\xd8jpeg")) as r:
            body = json.loads(r.read())
        assert r.status == 200
        assert [h["id"] for h in body["results"]] == ["p0", "p1"]
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(urllib.request.Request(base + "/similar?k=2", data=b"not an image"))
        assert err.value.code == 400
        assert "cannot decode" in json.loads(err.value.read())["error"]
        with urllib.request.urlopen(base + "/similar?text=red+summer+dress&k=1") as r:
            assert [h["id"] for h in json.loads(r.read())["results"]] == ["p0"]
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/similar?text=&k=1")
        assert err.value.code == 400
        with urllib.request.urlopen(base + "/healthz") as r:
            assert json.loads(r.read()) == {"ok": True}
    finally:
        httpd.shutdown()
        backend.close()


def test_thumbnail_over_grpc_and_http(fake_server):
    servicer, address = fake_server
    backend = example_backend.SimilarityBackend(address, "products", api_key="lk_abc")
    assert backend.thumbnail("p1") == (THUMBNAIL, THUMBNAIL_ETAG)
    req = servicer.requests[-1]
    assert (req.collection, req.id) == ("products", "p1")
    assert servicer.authorization[-1] == "Bearer lk_abc"
    with pytest.raises(grpc.RpcError) as err:
        backend.thumbnail("p9")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    httpd = example_backend.serve(backend, 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        with urllib.request.urlopen(base + "/thumbnail?id=p1") as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "image/jpeg"
            assert r.headers["ETag"] == THUMBNAIL_ETAG
            assert r.read() == THUMBNAIL
        # Revalidation: the same ETag is 304 without a body.
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(urllib.request.Request(
                base + "/thumbnail?id=p1", headers={"If-None-Match": THUMBNAIL_ETAG}))
        assert err.value.code == 304
        assert err.value.read() == b""
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/thumbnail?id=p9")
        assert err.value.code == 404
        assert json.loads(err.value.read()) == {"error": 'no item "p9"', "code": "NOT_FOUND"}
    finally:
        httpd.shutdown()
        backend.close()
    other = example_backend.SimilarityBackend(address, "plain")
    with pytest.raises(grpc.RpcError) as err:
        other.thumbnail("p1")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "keeps no thumbnails" in err.value.details()
    other.close()


def test_api_key_is_sent_as_bearer_metadata(fake_server):
    servicer, address = fake_server
    example_backend.SimilarityBackend(address, "products").similar_products(b"x", k=1)
    example_backend.SimilarityBackend(address, "products", api_key="lk_abc").similar_products(b"x", k=1)
    assert servicer.authorization == [None, "Bearer lk_abc"]
@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI."""
    import shutil
    import subprocess
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    d = tmp_path_factory.mktemp("tls")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-days", "1", "-subj", "/CN=Test CA", "-keyout", "ca.key", "-out", "ca.pem")
    for name, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
                      ("client", "extendedKeyUsage=clientAuth")):
        run("req", *ec, "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr")
        (d / f"{name}.ext").write_text(ext + "\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-out", f"{name}.pem", "-extfile", f"{name}.ext")
    return d


@pytest.fixture()
def mtls_server(tls_files):
    servicer = FakeLookalike()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb2_grpc.add_LookalikeServicer_to_server(servicer, server)
    credentials = grpc.ssl_server_credentials(
        [((tls_files / "server.key").read_bytes(), (tls_files / "server.pem").read_bytes())],
        root_certificates=(tls_files / "ca.pem").read_bytes(), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(None)


def test_mutual_tls(mtls_server, tls_files):
    _, address = mtls_server
    backend = example_backend.SimilarityBackend(
        address, "products", tls_ca=str(tls_files / "ca.pem"),
        tls_cert=str(tls_files / "client.pem"), tls_key=str(tls_files / "client.key"))
    assert [h["id"] for h in backend.similar_products(b"jpeg", k=2)] == ["p0", "p1"]
    backend.close()

    no_cert = example_backend.SimilarityBackend(address, "products", tls_ca=str(tls_files / "ca.pem"),
                                                timeout_s=5)
    with pytest.raises(grpc.RpcError) as e:
        no_cert.similar_products(b"jpeg", k=2)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    no_cert.close()


def test_tls_files_are_checked(tls_files):
    with pytest.raises(ValueError, match='tls_ca: cannot read "/nope/ca.pem": No such file'):
        example_backend.SimilarityBackend("127.0.0.1:1", "products", tls_ca="/nope/ca.pem")
    with pytest.raises(ValueError, match="tls_cert and tls_key: give both or neither"):
        example_backend.SimilarityBackend("127.0.0.1:1", "products", tls_cert=str(tls_files / "client.pem"))
